/**
 * Sequence covering (after Marteau, "Sequence Covering for Efficient
 * Host-Based Intrusion Detection", IEEE TIFS 2019), a prototype for
 * tools/detect/round3.ts: a suffix automaton of the training traces answers,
 * call by call and in amortised constant time, how long the longest stretch
 * of calls ending here is that occurs somewhere in training (the matching
 * statistic), and how many pieces of training traces a greedy left-to-right
 * covering of the trace needs. Unbounded context where stide and the n-gram
 * model stop at six calls; online, as a wrapper would need it.
 *
 * @module
 */

/** Symbols: a call numbered n is n (below RADIX); traces are separated so that no match spans two. */
const RADIX = 1024;
const SEPARATOR = RADIX - 1;

/** A suffix automaton (Blumer et al. 1985) over the concatenated training traces. */
export class SuffixAutomaton {
  /** Per state, its transitions by symbol. */
  readonly #next: Map<number, number>[] = [new Map()];
  readonly #link: number[] = [-1];
  readonly #len: number[] = [0];
  #last = 0;

  constructor(traces: readonly (readonly number[])[]) {
    for (const t of traces) {
      for (const c of t) this.#extend(Math.min(c, RADIX - 2));
      this.#extend(SEPARATOR);
    }
  }

  get states(): number {
    return this.#len.length;
  }

  #go(state: number, c: number): number {
    return this.#next[state].get(c) ?? -1;
  }

  #extend(c: number): void {
    const cur = this.#len.length;
    this.#len.push(this.#len[this.#last] + 1);
    this.#link.push(0);
    this.#next.push(new Map());
    let p = this.#last;
    while (p !== -1 && this.#go(p, c) < 0) {
      this.#next[p].set(c, cur);
      p = this.#link[p];
    }
    if (p !== -1) {
      const q = this.#go(p, c);
      if (this.#len[p] + 1 === this.#len[q]) this.#link[cur] = q;
      else {
        const clone = this.#len.length;
        this.#len.push(this.#len[p] + 1);
        this.#link.push(this.#link[q]);
        this.#next.push(new Map(this.#next[q]));
        while (p !== -1 && this.#go(p, c) === q) {
          this.#next[p].set(c, clone);
          p = this.#link[p];
        }
        this.#link[q] = clone;
        this.#link[cur] = clone;
      }
    }
    this.#last = cur;
  }

  /**
   * Per call, the length of the longest run of calls ending at it that occurs in training (0: a call never seen),
   * and the number of pieces of a greedy covering (a piece grows while it still occurs in training).
   */
  match(nrs: readonly number[]): { lengths: number[]; pieces: number } {
    const lengths: number[] = [];
    let state = 0, length = 0;
    let piece = 0, pieceLength = 0, pieces = 0;
    for (const n of nrs) {
      const c = Math.min(n, RADIX - 2);
      while (state !== 0 && this.#go(state, c) < 0) {
        state = this.#link[state];
        length = this.#len[state];
      }
      const to = this.#go(state, c);
      if (to >= 0) {
        state = to;
        length++;
      } else {
        state = 0;
        length = 0;
      }
      lengths.push(length);
      const grown = pieceLength > 0 ? this.#go(piece, c) : -1;
      if (grown >= 0) {
        piece = grown;
        pieceLength++;
      } else {
        pieces++;
        piece = Math.max(this.#go(0, c), 0);
        pieceLength = piece > 0 ? 1 : 0;
      }
    }
    return { lengths, pieces };
  }
}
