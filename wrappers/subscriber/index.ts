/**
 * subscriber: subscribes to "suspicious-exec" (see wrappers/emitter), raises
 * a medium-severity alert "<emitter> reports exec of <payload>" for each
 * one, and answers the number in setting "answer" (default 1: deny; 2
 * kills, 0 allows).
 */
import {
  abstractEmitter,
  abstractPayload,
  alert,
  declared,
  settingInt,
  SEVERITY_MEDIUM,
  subscribe,
} from "../sdk/index";

export { idwrap_abi_version } from "../sdk/index";

const EVENT_NAME = "suspicious-exec";
const REPORTS_EXEC_OF = " reports exec of ";

let answer: i32 = 1;

export function idwrap_declare(): i32 {
  subscribe(EVENT_NAME);
  return declared();
}

export function idwrap_init(): i32 {
  answer = <i32>settingInt("answer", 1);
  return 0;
}

export function idwrap_on_abstract(_subscription: i32, _payloadLen: i32): i32 {
  // One subscription only, so it is always 0; abstractPayload() reads the
  // payload whatever its length.
  alert(SEVERITY_MEDIUM, abstractEmitter() + REPORTS_EXEC_OF + abstractPayload());
  return answer;
}
