/**
 * docs/audit.md's field table lists exactly the fields a record may have (AUDIT_FIELDS, which the compiler holds
 * to the AuditRecord type).
 *
 * @module
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { AUDIT_FIELDS } from "../../host/audit/record.ts";

/** The field names of the "Records" table: first column, `a.b`, `.c` meaning a sibling of the name before. */
function documentedFields(markdown: string): string[] {
  const section = markdown.slice(markdown.indexOf("## Records"), markdown.indexOf("## What is audit data"));
  const names: string[] = [];
  for (const line of section.split("\n")) {
    const cell = /^\| (`[^|]+?)\s*\|/.exec(line)?.[1];
    if (!cell) continue;
    let previous = "";
    for (const [, name] of cell.matchAll(/`([^`]+)`/g)) {
      const full = name.startsWith(".") ? previous.slice(0, previous.lastIndexOf(".")) + name : name;
      names.push(full);
      previous = full;
    }
  }
  return names;
}

Deno.test("docs/audit.md documents every record field, and no other", async () => {
  const doc = documentedFields(await Deno.readTextFile(new URL("../../docs/audit.md", import.meta.url)));
  assertEquals([...doc].sort(), [...AUDIT_FIELDS].sort());
  assertEquals(new Set(doc).size, doc.length, "a field is listed twice");
});
