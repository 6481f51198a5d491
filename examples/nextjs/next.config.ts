import path from "node:path";
import type { NextConfig } from "next";

// The repository's root: @nexus/usage is linked from clients/typescript.
const root = path.join(__dirname, "..", "..");

const config: NextConfig = {
  turbopack: { root },
  outputFileTracingRoot: root,
  // Loaded by Node at run time, not bundled: the tracker is one per process.
  serverExternalPackages: ["@nexus/usage"],
};

export default config;
