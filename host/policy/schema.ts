/**
 * The shipped JSON Schema of policy files (policies/schema.json: editors
 * complete and check policies with it), applied by ajv to every parsed
 * policy. Its first error comes back as a path into the document, so the
 * message names the file, line and field like every other policy error.
 *
 * @module
 */
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import schema from "../../policies/schema.json" with { type: "json" };

let validate: ValidateFunction | undefined;

/** Where the schema is not met, and why. */
export interface SchemaProblem {
  /** Keys and indexes into the document. */
  path: (string | number)[];
  message: string;
}

/** The first problem the schema finds in a policy document (as YAML parsed it), or undefined. */
export function validateSchema(doc: unknown): SchemaProblem | undefined {
  validate ??= new Ajv({ allErrors: true, strict: true, allowUnionTypes: true }).compile(schema);
  if (validate(doc)) return undefined;
  const errors = validate.errors ?? [];
  // The deepest error says most (a oneOf's branches report at their parent too).
  const best = errors.reduce((a, b) => depth(b) > depth(a) ? b : a, errors[0]);
  return { path: pathOf(best), message: `does not match policies/schema.json: ${describe(best)}` };
}

function depth(e: ErrorObject): number {
  return pathOf(e).length * 2 + (e.keyword === "oneOf" || e.keyword === "anyOf" ? 0 : 1);
}

function pathOf(e: ErrorObject): (string | number)[] {
  const path = e.instancePath.split("/").slice(1).map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"))
    .map((s) => /^[0-9]+$/.test(s) ? Number(s) : s);
  if (e.keyword === "additionalProperties") path.push((e.params as { additionalProperty: string }).additionalProperty);
  return path;
}

function describe(e: ErrorObject): string {
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case "additionalProperties":
      return "unknown field";
    case "enum":
      return `expected one of ${(p.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(", ")}`;
    case "not":
      return 'a leading "!" is refused (write the condition under not:)';
    default:
      return e.message ?? e.keyword;
  }
}
