// The typed client's types are generated from api/openapi.yaml
// (npm run generate); this fails when the committed ones are stale.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { packageRoot, repoRoot } from "./stack.js";

test("src/openapi.ts is what openapi-typescript makes of api/openapi.yaml", () => {
  const dir = mkdtempSync(join(tmpdir(), "nexus-openapi-"));
  try {
    const out = join(dir, "openapi.ts");
    execFileSync(process.execPath, [join(packageRoot, "node_modules/openapi-typescript/bin/cli.js"), join(repoRoot, "api/openapi.yaml"), "--output", out], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    const fresh = readFileSync(out, "utf8");
    const committed = readFileSync(join(packageRoot, "src/openapi.ts"), "utf8");
    assert.ok(fresh === committed, "src/openapi.ts is stale against api/openapi.yaml: run `npm run generate` in clients/typescript and commit it");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
