/**
 * Activation criteria: each condition matching and not matching, on real
 * files (a set-user-ID and a set-group-ID copy of a small binary, a file
 * owned by uid 65534, a file of known SHA-256).
 */
import { scratchDir } from "../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import { type Criteria, globProblem, parseCriteria } from "../../host/policy/criteria.ts";
import {
  attributesCacheKey,
  type ExeAttributes,
  matchesCriteria,
  needsExeAttributes,
  type ProcessFacts,
  readExeAttributes,
} from "../../host/policy/criteria_match.ts";

const isRoot = Deno.uid() === 0;
const dir = await scratchDir({ prefix: "idwrap-criteria-" });
const PLAIN = `${dir}/plain`;
const SUID = `${dir}/suid`;
const SGID = `${dir}/sgid`;
const NOBODY = `${dir}/nobody`;
const HELLO = `${dir}/hello`;
const HIDDEN = `${dir}/.hidden`;
for (
  const [path, mode] of [[PLAIN, 0o755], [SUID, 0o4755], [SGID, 0o2755], [NOBODY, 0o755], [HIDDEN, 0o755]] as const
) {
  Deno.copyFileSync("/bin/true", path);
  Deno.chmodSync(path, mode);
}
if (isRoot) Deno.chownSync(NOBODY, 65534, 65534);
Deno.writeTextFileSync(HELLO, "hello\n");
/** `printf 'hello\n' | sha256sum` */
const HELLO_SHA256 = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";
const MISSING = `${dir}/missing`;

const failThrow = (path: (string | number)[], detail: string): never => {
  throw new Error(`${path.join(".")}: ${detail}`);
};
const parse = (raw: unknown): Criteria => parseCriteria(raw, ["activate"], failThrow);

const BASE: ProcessFacts = { pid: 100, exe: PLAIN, argv0: "plain", uid: 1000, gid: 1000, parentExe: "/usr/bin/bash" };

/** name, criteria (YAML value), facts to change, expected, and whether it needs root. */
type Case = [string, unknown, Partial<ProcessFacts>, boolean, boolean?];
const CASES: Case[] = [
  ["all", { all: true }, {}, true],
  ["program: the exe's base name", { program: "plain" }, {}, true],
  ["program: another base name", { program: "cat" }, {}, false],
  ["program: a base-name glob", { program: "pl*n" }, {}, true],
  ["program: a path glob on the exe", { program: `${dir}/*` }, {}, true],
  ["program: a path glob elsewhere", { program: "/usr/bin/*" }, {}, false],
  ["program: ** crosses directories", { program: "**/plain" }, {}, true],
  ["program: a list, one matches", { program: ["cat", "plain"] }, {}, true],
  ["program: a list, none matches", { program: ["cat", "less"] }, {}, false],
  ["program: argv0 is ignored (the invoker chooses it)", { program: "vi" }, { argv0: "/usr/local/bin/vi" }, false],
  ["program: a path glob ignores argv0", { program: "/usr/bin/vi" }, { argv0: "/usr/bin/vi" }, false],
  ["program: dot files match *", { program: "*" }, { exe: HIDDEN, argv0: ".hidden" }, true],
  ["program: braces", { program: "{cat,plain}" }, {}, true],
  ["program: a class", { program: "[^p]lain" }, {}, false],
  ["user: the real uid", { user: 1000 }, {}, true],
  ["user: another uid", { user: 0 }, {}, false],
  ["user: a name", { user: "root" }, { uid: 0 }, true],
  ["user: a name, not the invoker", { user: "root" }, {}, false],
  ["user: digits as a string", { user: "1000" }, {}, true],
  ["user: a list", { user: ["root", 1000] }, {}, true],
  ["group: the real gid", { group: 1000 }, {}, true],
  ["group: a name", { group: "root" }, { gid: 0 }, true],
  ["group: another gid", { group: "root" }, {}, false],
  ["parent: the parent's base name", { parent: "bash" }, {}, true],
  ["parent: a base-name glob", { parent: "*sh" }, {}, true],
  ["parent: the parent's path", { parent: "/usr/bin/bash" }, {}, true],
  ["parent: another program", { parent: "zsh" }, {}, false],
  ["parent: not the process's own program", { parent: "plain" }, {}, false],
  ["setuid: true on a set-user-ID file", { setuid: true }, { exe: SUID }, true],
  ["setuid: true on a plain file", { setuid: true }, {}, false],
  ["setuid: false on a plain file", { setuid: false }, {}, true],
  ["setuid: false on a set-user-ID file", { setuid: false }, { exe: SUID }, false],
  ["setuid: true on a set-group-ID file", { setuid: true }, { exe: SGID }, false],
  ["setgid: true on a set-group-ID file", { setgid: true }, { exe: SGID }, true],
  ["setgid: true on a plain file", { setgid: true }, {}, false],
  ["setgid: false on a set-user-ID file", { setgid: false }, { exe: SUID }, true],
  ["setgid: false on a set-group-ID file", { setgid: false }, { exe: SGID }, false],
  ["owner: the file's owner", { owner: Deno.uid() }, {}, true],
  ["owner: uid 65534", { owner: 65534 }, { exe: NOBODY }, true, true],
  ["owner: nobody, by name", { owner: "nobody" }, { exe: NOBODY }, true, true],
  ["owner: root, on nobody's file", { owner: "root" }, { exe: NOBODY }, false, true],
  ["owner: 65534, on a root file", { owner: 65534 }, {}, false, true],
  ["sha256: the content's digest", { sha256: HELLO_SHA256 }, { exe: HELLO }, true],
  ["sha256: in upper case", { sha256: HELLO_SHA256.toUpperCase() }, { exe: HELLO }, true],
  ["sha256: a list", { sha256: ["0".repeat(64), HELLO_SHA256] }, { exe: HELLO }, true],
  ["sha256: another digest", { sha256: "0".repeat(64) }, { exe: HELLO }, false],
  ["sha256: another file", { sha256: HELLO_SHA256 }, {}, false],
  ["an unreadable file: setuid false does not hold", { setuid: false }, { exe: MISSING }, false],
  ["an unreadable file: setuid true does not hold", { setuid: true }, { exe: MISSING }, false],
  ["AND: all hold", { program: "plain", user: 1000, parent: "bash", setuid: false }, {}, true],
  ["AND: one fails", { program: "plain", user: 0 }, {}, false],
  ["AND: the file condition fails", { program: "suid", setuid: false }, { exe: SUID, argv0: "suid" }, false],
];

for (const [name, raw, changes, expected, needsRoot] of CASES) {
  Deno.test({
    name: `matchesCriteria() ${name}: ${expected ? "matches" : "does not match"}`,
    ignore: needsRoot && !isRoot,
    fn: () => {
      const c = parse(raw);
      const facts = { ...BASE, ...changes };
      let reads = 0;
      const exe = () => {
        reads++;
        return readExeAttributes(facts.exe);
      };
      assertEquals(matchesCriteria(c, facts, exe), expected);
      // The file is read only for the conditions about it, at most once.
      assert(reads <= (needsExeAttributes(c) ? 1 : 0), `read the file ${reads} times`);
      // Criteria are plain data: they survive the trip to the supervisor's worker.
      assertEquals(matchesCriteria(structuredClone(c), facts, exe), expected);
    },
  });
}

Deno.test("matchesCriteria() does not read the file for conditions on the process", () => {
  const exe = (): ExeAttributes => {
    throw new Error("read the file");
  };
  assertEquals(matchesCriteria(parse({ program: "plain", user: 1000, group: 1000, parent: "bash" }), BASE, exe), true);
  assertEquals(matchesCriteria(parse({ all: true }), BASE, exe), true);
  // A condition on the process that fails skips the file.
  assertEquals(matchesCriteria(parse({ program: "cat", setuid: true }), BASE, exe), false);
});

Deno.test("readExeAttributes() stats and hashes the file", () => {
  const suid = readExeAttributes(SUID)!;
  assertEquals(suid.mode & 0o7777, 0o4755);
  assertEquals(suid.mode & 0o170000, 0o100000);
  assertEquals(suid.uid, Deno.uid());
  assertEquals(suid.gid, Deno.gid());
  assertEquals(readExeAttributes(SGID)!.mode & 0o7777, 0o2755);
  assertEquals(readExeAttributes(HELLO)!.sha256, HELLO_SHA256);
  if (isRoot) assertEquals([readExeAttributes(NOBODY)!.uid, readExeAttributes(NOBODY)!.gid], [65534, 65534]);
  // Larger than one read: the hash streams over every chunk.
  const big = new Uint8Array(200_000).map((_, i) => i % 251);
  Deno.writeFileSync(`${dir}/big`, big);
  assertEquals(readExeAttributes(`${dir}/big`)!.sha256, sha256Sum(`${dir}/big`));
  assertEquals(readExeAttributes(MISSING), undefined);
  assertEquals(readExeAttributes(dir), undefined);
});

/** The digest by sha256sum(1), independent of node:crypto. */
function sha256Sum(path: string): string {
  const out = new Deno.Command("sha256sum", { args: [path] }).outputSync();
  return new TextDecoder().decode(out.stdout).split(" ")[0];
}

Deno.test("parseCriteria() normalises: lists, ids, lower-case digests", () => {
  assertEquals(parse({ program: "cat" }), { program: ["cat"] });
  assertEquals(parse({ user: ["root", "1000", 7], group: "root", owner: "root" }), {
    user: [0, 1000, 7],
    group: [0],
    owner: [0],
  });
  assertEquals(parse({ sha256: HELLO_SHA256.toUpperCase() }), { sha256: [HELLO_SHA256] });
  assertEquals(parse({ setuid: true, setgid: false, parent: ["sh", "/usr/bin/*"] }), {
    parent: ["sh", "/usr/bin/*"],
    setuid: true,
    setgid: false,
  });
  assertEquals(parse({ all: true }), { all: true });
});

const BAD: [unknown, string][] = [
  [null, "activate: expected a mapping of conditions"],
  [["cat"], "activate: expected a mapping of conditions"],
  [{}, "activate: expected at least one condition"],
  [{ programs: "cat" }, "activate.programs: unknown condition, expected one of all, program, user, group, parent"],
  [{ all: false }, "activate.all: expected true"],
  [{ all: true, user: 0 }, "activate.all: all: true cannot be combined with other conditions"],
  [{ program: 3 }, "activate.program: expected a glob, got 3"],
  [{ program: [] }, "activate.program: expected a glob or a non-empty list of them"],
  [{ program: { a: 1 } }, "activate.program: expected a glob or a list of them"],
  [{ program: ["cat", "["] }, 'activate.program.1: bad glob "[": unclosed "[" at offset 0'],
  [{ program: "a{b" }, 'activate.program: bad glob "a{b": unclosed "{"'],
  [{ program: "a}" }, 'activate.program: bad glob "a}": "}" at offset 1 without a "{"'],
  [{ program: "[!a]" }, 'activate.program: bad glob "[!a]": "[!" does not negate a class here: write "[^"'],
  [{ program: "!cat" }, 'activate.program: bad glob "!cat": a leading "!" would negate it'],
  [{ program: "" }, 'activate.program: bad glob "": empty glob'],
  [{ user: "nosuchuser" }, 'activate.user: unknown user "nosuchuser" (not found by getent passwd)'],
  [{ user: -1 }, "activate.user: expected a user name or uid, got -1"],
  [{ user: 1.5 }, "activate.user: expected a user name or uid, got 1.5"],
  [{ user: true }, "activate.user: expected a user name or uid, got true"],
  [{ group: "nosuchgroup" }, 'activate.group: unknown group "nosuchgroup" (not found by getent group)'],
  [{ owner: "nosuchuser" }, 'activate.owner: unknown user "nosuchuser" (not found by getent passwd)'],
  [{ setuid: "yes" }, 'activate.setuid: expected true or false, got "yes"'],
  [{ setgid: 1 }, "activate.setgid: expected true or false, got 1"],
  [{ sha256: "abc" }, 'activate.sha256: expected 64 hexadecimal digits, got "abc"'],
  [{ sha256: "g".repeat(64) }, "activate.sha256: expected 64 hexadecimal digits"],
  [{ sha256: 1234 }, "activate.sha256: expected 64 hexadecimal digits (quote the digest"],
];

for (const [raw, message] of BAD) {
  Deno.test(`parseCriteria() refuses ${JSON.stringify(raw)}`, () => {
    throws(() => parse(raw), (e: unknown) => {
      if (!(e as Error).message.startsWith(message)) {
        throw new Error(`got: ${(e as Error).message}\nwanted: ${message}`);
      }
      return true;
    });
  });
}

Deno.test("globProblem() accepts well-formed globs", () => {
  for (
    const glob of [
      "cat",
      "*",
      "**/bin/*",
      "/usr/bin/python3*",
      "{cat,less}",
      "[a-z]*",
      "[^.]*",
      "[]]",
      "[^]]x",
      "\\[",
      "a\\{",
    ]
  ) {
    assertEquals(globProblem(glob), undefined, glob);
  }
});

Deno.test("attributesCacheKey() keys on ctime too, and refuses files changed in the last seconds", () => {
  const info = (mtime: number, ctime: number) =>
    ({ dev: 1, ino: 2, size: 3, mtime: new Date(mtime), ctime: new Date(ctime) }) as Deno.FileInfo;
  const now = 1_000_000;
  // Same dev, inode, size and mtime, another ctime: another key (a rewrite in place with the mtime put back).
  const a = attributesCacheKey(info(now - 60_000, now - 60_000), now);
  const b = attributesCacheKey(info(now - 60_000, now - 30_000), now);
  assert(a !== undefined && b !== undefined && a !== b);
  assertEquals(attributesCacheKey(info(now - 60_000, now - 100), now), undefined);
  assertEquals(attributesCacheKey(info(now - 100, now - 60_000), now), undefined);
});
