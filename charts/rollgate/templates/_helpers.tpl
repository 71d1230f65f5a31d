{{/* The chart's name, overridable. */}}
{{- define "rollgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's full name: the release name, prefixed with the chart name unless it has it. */}}
{{- define "rollgate.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "rollgate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "rollgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: controller
{{- end -}}

{{/* Labels that select the controller's pods. */}}
{{- define "rollgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rollgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The ServiceAccount the controller runs as. */}}
{{- define "rollgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "rollgate.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The image reference: repository@digest, else repository:tag (tag defaults to appVersion). */}}
{{- define "rollgate.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Refuses values that cannot work together. */}}
{{- define "rollgate.validate" -}}
{{- if and (eq .Values.rbac.scope "namespace") (empty .Values.controller.namespaces) -}}
{{- fail "rbac.scope \"namespace\" needs controller.namespaces: the namespaces whose Rollouts the controller reconciles" -}}
{{- end -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) -}}
{{- fail "replicaCount above 1 needs leaderElection.enabled: true (two active replicas would both write targets)" -}}
{{- end -}}
{{- end -}}

{{/*
The API calls the controller makes on objects in the namespaces it reconciles: Rollouts
(watched; the one-shot action annotation patched; status written by server-side apply),
target ConfigMaps and FeatureFlags (watched by label, read, merge-patched), Events
(events.k8s.io, created and patched as a series), Secrets read by name (gate credentials,
webhook target headers) and never listed. tests/chart/chart_rbac.rs checks these rules against
the calls the controller makes.
*/}}
{{- define "rollgate.rules" -}}
- apiGroups: ["rollgate.dev"]
  resources: ["rollouts"]
  verbs: ["list", "watch", "patch"]
- apiGroups: ["rollgate.dev"]
  resources: ["rollouts/status"]
  verbs: ["patch"]
{{- if .Values.tenancy.defaultServiceAccount }}
{{- /* Lockdown: target content and Secrets are read and written as each Rollout's
       ServiceAccount; the controller keeps list/watch for its caches and may impersonate
       ServiceAccounts (no groups: the API server adds a ServiceAccount's own). */}}
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["list", "watch"]
{{- if .Values.rbac.featureFlags }}
- apiGroups: ["core.openfeature.dev"]
  resources: ["featureflags"]
  verbs: ["list", "watch"]
{{- end }}
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: [""]
  resources: ["serviceaccounts"]
  verbs: ["impersonate"]
{{- else }}
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "watch", "patch"]
{{- if .Values.rbac.featureFlags }}
- apiGroups: ["core.openfeature.dev"]
  resources: ["featureflags"]
  verbs: ["get", "list", "watch", "patch"]
{{- end }}
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
{{- end }}
{{- end -}}
