/**
 * com: the paper's Com_id (Ko et al., USENIX Security 2000, section 4.1,
 * Figure 4), an abstract wrapper that combines two detectors. It intercepts
 * no system call; it subscribes to the abstract events "seq-warning" (from
 * a sequence-based wrapper, Seq_id: wrappers/seq) and "imapd-warning" (from
 * the specification-based Imapd_id, wrappers/imapd), and remembers, in the
 * instance's memory (so per process), which of the two have fired.
 *
 *  - one of them alone: a medium alert (severity 2) naming it, and answer 0
 *    (the emitter goes on as it would without Com_id);
 *  - both (now or earlier in this process): a critical alert (severity 4)
 *    and answer 2, "kill": the emitter returns kill() from its hook.
 *
 * Killing is the emitter's act: the answer goes back as emit()'s return
 * value, and each emitter must turn 2 into kill() (Imapd_id does; Seq_id is
 * expected to do the same, declaring DENY on the calls where it may emit).
 * An emitter that ignores the answer makes Com_id an alerting-only wrapper.
 *
 * Settings: none.
 */
import {
  abstractEmitter,
  abstractPayload,
  alert,
  declared,
  Event,
  log,
  LOG_ERROR,
  SEVERITY_CRITICAL,
  SEVERITY_MEDIUM,
  subscribe,
} from "../sdk/index";

export { idwrap_abi_version } from "../sdk/index";

// Subscription numbers count 0, 1, ... in declaration order, the same in
// every instance (docs/abi.md); idwrap_declare checks the host agrees.
const SUB_SEQ: i32 = 0;
const SUB_IMAPD: i32 = 1;
const NAMES: StaticArray<string> = ["seq-warning", "imapd-warning"];
const ERR_NUMBERING = "com: the host numbered the subscriptions differently than expected (0, 1)";

const ANSWER_NONE: i32 = 0;
const ANSWER_KILL: i32 = 2;

let seqFired = false;
let imapdFired = false;

export function idwrap_declare(): i32 {
  const seq = subscribe(NAMES[SUB_SEQ]);
  const imapd = subscribe(NAMES[SUB_IMAPD]);
  if ((seq >= 0 && seq != SUB_SEQ) || (imapd >= 0 && imapd != SUB_IMAPD)) {
    log(LOG_ERROR, ERR_NUMBERING);
    return 1;
  }
  return declared();
}

export function idwrap_on_abstract(subscription: i32, _payloadLen: i32): i32 {
  if (subscription == SUB_SEQ) seqFired = true;
  else if (subscription == SUB_IMAPD) imapdFired = true;
  else return ANSWER_NONE;
  const call = Event.syscallName();
  const at = call === null ? "" : " at " + call;
  const what = NAMES[subscription] + " from " + abstractEmitter() + at + ": " + abstractPayload();
  if (seqFired && imapdFired) {
    alert(SEVERITY_CRITICAL, "com: both seq-warning and imapd-warning fired, killing; last: " + what);
    return ANSWER_KILL;
  }
  alert(SEVERITY_MEDIUM, "com: " + what);
  return ANSWER_NONE;
}
