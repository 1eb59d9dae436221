import type { UpstreamConfig, UpstreamEnv } from "../config.js";

/** A provider preset: its settings from the environment, reporting what is missing. */
export type UpstreamSettings = Omit<UpstreamConfig, "timeoutMs" | "isDevelopmentProvider">;
export type ReportMissing = (variable: string, why?: string) => void;
export type UpstreamPreset = (env: UpstreamEnv, missing: ReportMissing) => UpstreamSettings;

export function scopesFrom(env: UpstreamEnv, fallback: string): string[] {
  return (env.UPSTREAM_SCOPES ?? fallback).split(/\s+/).filter(Boolean);
}
