/**
 * Which loaded wrappers run in which process: the WSS's activation
 * (./activation.ts) over the enforcement's wrappers, re-evaluated when a
 * process appears and at every execve, and told to the decider (the wrapper
 * chain keeps instances, not bindings).
 *
 * @module
 */
import type { ProgramIdentity } from "../events.ts";
import type { WrapperSpec } from "../policy/policy.ts";
import { Activation } from "./activation.ts";
import type { ProcessFacts } from "../policy/criteria_match.ts";

/** The binding table of one WSS. */
export class Bindings {
  readonly #activation = new Activation();
  #specs: readonly WrapperSpec[];

  constructor(specs: readonly WrapperSpec[]) {
    this.#specs = specs;
  }

  /** A policy reload: new wrappers, bound afresh at each process's next exec. */
  setSpecs(specs: readonly WrapperSpec[]): void {
    this.#specs = specs;
  }

  /**
   * Evaluates activation for a process's (new) program.
   *
   * @param ppid the parent, for a new process (its exe is a criterion); undefined at an exec
   * @returns the indexes (in the enforcement's order) of the wrappers bound to it
   */
  bind(pid: number, ppid: number | undefined, program: ProgramIdentity): Set<number> {
    const facts = this.#activation.record(pid, ppid, program);
    const bound = new Set<number>();
    this.#specs.forEach((spec, i) => {
      if (this.#activation.binds(spec, facts)) bound.add(i);
    });
    return bound;
  }

  /** The facts last recorded for a process (rule scopes read them). */
  facts(pid: number): ProcessFacts | undefined {
    return this.#activation.facts(pid);
  }

  forget(pid: number): void {
    this.#activation.forget(pid);
  }
}
