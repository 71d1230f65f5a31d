-- Argo CD health check for rollgate.dev/v1alpha1 Rollout.
--
-- Argo CD runs it with the live object in the global `obj` and reads the returned table's
-- `status` and `message`. It maps status.phase:
--   Succeeded            -> Healthy
--   Paused               -> Suspended
--   RolledBack, Failed   -> Degraded
--   anything else        -> Progressing (Pending, Progressing, no status yet)
-- and says Progressing, whatever the phase, while status.observedGeneration lags
-- metadata.generation: the status then describes an older spec.
-- Written for Lua 5.1 (Argo CD's interpreter) and tested with Lua 5.4 too.

local hs = {}
local status = obj.status
local generation = nil
local name = "NAME"
if obj.metadata ~= nil then
  generation = obj.metadata.generation
  if obj.metadata.name ~= nil then
    name = obj.metadata.name
  end
end

if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the rollgate controller to report a status"
  return hs
end

local observed = status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  if observed == nil then
    hs.message = string.format(
      "Waiting for the rollgate controller to observe generation %d", generation)
  else
    hs.message = string.format(
      "Waiting for the rollgate controller to observe generation %d (status describes %d)",
      generation, observed)
  end
  return hs
end

-- The controller's own words when it left some, else a default.
local function describe(default)
  local text = status.message
  if text == nil or text == "" then
    return default
  end
  return text
end

local phase = status.phase
if phase == "Succeeded" then
  hs.status = "Healthy"
  hs.message = describe("Every stage passed")
elseif phase == "Paused" then
  hs.status = "Suspended"
  hs.message = describe("Paused; resume with: kubectl rollgate resume " .. name)
elseif phase == "RolledBack" then
  hs.status = "Degraded"
  hs.message = describe("Rolled back")
elseif phase == "Failed" then
  hs.status = "Degraded"
  hs.message = describe("The spec is invalid")
elseif phase == "Pending" then
  hs.status = "Progressing"
  hs.message = describe("Waiting for the pre-checks to pass")
elseif phase == "Progressing" then
  hs.status = "Progressing"
  hs.message = describe("Progressing")
elseif phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the rollgate controller to set a phase"
else
  hs.status = "Progressing"
  hs.message = describe("Phase " .. tostring(phase))
end
return hs
