import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { SuffixAutomaton } from "../../../tools/detect/cover.ts";

/** A small deterministic generator (a linear congruential one), so that a failure reproduces. */
function random(seed: number): () => number {
  let x = seed;
  return () => (x = (x * 1103515245 + 12345) % 2147483648) / 2147483648;
}

/** Brute force: does `run` occur inside one of the traces? */
function occurs(traces: readonly number[][], run: readonly number[]): boolean {
  return traces.some((t) => {
    for (let i = 0; i + run.length <= t.length; i++) if (run.every((c, j) => t[i + j] === c)) return true;
    return false;
  });
}

/** Brute force of SuffixAutomaton.match: the longest run ending at each call, and greedy pieces. */
function reference(traces: readonly number[][], nrs: readonly number[]): { lengths: number[]; pieces: number } {
  const lengths = nrs.map((_, end) => {
    let l = 0;
    while (l < end + 1 && occurs(traces, nrs.slice(end - l, end + 1))) l++;
    return l;
  });
  let pieces = 0;
  for (let start = 0; start < nrs.length;) {
    let end = start;
    while (end < nrs.length && occurs(traces, nrs.slice(start, end + 1))) end++;
    pieces++;
    start = Math.max(end, start + 1);
  }
  return { lengths, pieces };
}

Deno.test("SuffixAutomaton.match: longest training runs and greedy pieces equal a brute-force search", () => {
  const next = random(18);
  const trace = (n: number, alphabet: number) => Array.from({ length: n }, () => Math.floor(next() * alphabet));
  for (let round = 0; round < 40; round++) {
    const alphabet = 2 + round % 5;
    const train = Array.from({ length: 1 + round % 4 }, () => trace(5 + Math.floor(next() * 30), alphabet));
    const sam = new SuffixAutomaton(train);
    // Calls 0..alphabet: one symbol beyond the training alphabet, never seen.
    const probe = trace(40, alphabet + 1);
    assertEquals(sam.match(probe), reference(train, probe), `round ${round}: train ${JSON.stringify(train)}`);
  }
});

Deno.test("SuffixAutomaton.match: a run never spans two training traces", () => {
  const sam = new SuffixAutomaton([[1, 2], [3, 4]]);
  assertEquals(sam.match([1, 2, 3, 4]), { lengths: [1, 2, 1, 2], pieces: 2 });
  assertEquals(sam.match([9, 1, 2]), { lengths: [0, 1, 2], pieces: 2 });
});
