/**
 * The SDK turns each tool's schema into JSON Schema (for `tools/list`, and for the 2026-07-28
 * `Mcp-Param` header check of every `tools/call`) and caches the result per server. We build a
 * server per request, so that cache never hits: the conversion was the largest single cost of a
 * request (docs/performance.md). Tool definitions live at module level and never change, so the
 * conversion is cached here per schema object, for the instance's life. Validation still runs
 * the schema's own `validate`, unchanged.
 */
interface JsonSchemaCapable {
  "~standard": {
    version: 1;
    vendor: string;
    validate: (value: unknown, options?: unknown) => unknown;
    jsonSchema: {
      input: (options: { target: string }) => Record<string, unknown>;
      output: (options: { target: string }) => Record<string, unknown>;
    };
  };
}

const wrappers = new WeakMap<object, JsonSchemaCapable>();

function isJsonSchemaCapable(schema: unknown): schema is JsonSchemaCapable {
  const standard = (schema as Partial<JsonSchemaCapable> | undefined)?.["~standard"];
  return typeof standard?.validate === "function" && typeof standard.jsonSchema === "object";
}

/** `schema` with its JSON Schema conversions computed once per target; anything else as is. */
export function withCachedJsonSchema<T>(schema: T): T {
  if (!isJsonSchemaCapable(schema)) return schema;
  let wrapper = wrappers.get(schema);
  if (!wrapper) {
    const standard = schema["~standard"];
    const converted = new Map<string, Record<string, unknown>>();
    const convert = (io: "input" | "output") => (options: { target: string }) => {
      const key = `${io} ${options.target}`;
      let json = converted.get(key);
      if (!json) {
        // Frozen: one object now answers every request, so nothing may change it in place.
        json = deepFreeze(standard.jsonSchema[io](options));
        converted.set(key, json);
      }
      return json;
    };
    wrapper = {
      "~standard": {
        version: standard.version,
        vendor: standard.vendor,
        validate: (value, options) => standard.validate(value, options),
        jsonSchema: { input: convert("input"), output: convert("output") },
      },
    };
    wrappers.set(schema, wrapper);
  }
  return wrapper as T;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
