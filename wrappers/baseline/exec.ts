/**
 * Rules about execution: memfd and temporary places (memfd-exec, tmp-exec),
 * a shell or interpreter started by a network service (service-shell); and
 * what the exec lifecycle learns about the program that now runs (the
 * script an interpreter runs, for cloud-credential-read).
 */
import { allow, Event, kvGetString, kvList, SYS_execveat, wrStat } from "../sdk/index";
import { canonical, exePath, programIn, strPath, underAny } from "./lists";
import { fire, fireAlertOnly, R_MEMFD_EXEC, R_SERVICE_SHELL, R_TMP_EXEC, strongest } from "./rules";
import { services, serviceShellAllow, shells, tmpDirs, tmpExecAllow } from "./settings";
import { serving, SERVING_PREFIX } from "./system";

/** The last execve of this process was already alerted in pre. */
let execAlerted = false;
/** The path of this process's last execve, until the exec lifecycle confirms it. */
let pendingExec = "";
/** The script argument of this process's last execve (scriptArgument), until the exec lifecycle. */
let pendingScriptArg = "";
/** The script the current program runs (the execve path, when the kernel ran an interpreter for it), or "". */
export let scriptPath = "";
/** The script or module an interpreter was started on (python3 -S /x/gcloud.py, python3 -Im azure.cli), or "". */
export let scriptArg = "";

/** Interpreter flags that take no argument (python, perl, ruby): they may come before the script. */
const PLAIN_FLAGS = "bBdEhiIOqsSuvw";

/**
 * The script an interpreter's command line names: the first argument, after
 * flags that take no argument only ("-S", "-Es"), or the module of "-m M"
 * ("-Im M"). Anything else before it (an option with a value, "-c CODE")
 * and there is none: what runs then is not what the argument says.
 */
function scriptArgument(): string {
  const n = Event.argc();
  for (let i = 1; i < n && i < 8; i++) {
    const a = Event.argvAt(i);
    if (a === null || a.length == 0) return "";
    if (a.charCodeAt(0) != 0x2d) return canonical(a); // not "-": the script
    for (let j = 1; j < a.length; j++) {
      const c = a.charAt(j);
      if (c == "m" && j == a.length - 1) {
        const m = i + 1 < n ? Event.argvAt(i + 1) : null;
        return m === null ? "" : m;
      }
      if (!PLAIN_FLAGS.includes(c)) return ""; // an option with a value (-c, -W, -X) or unknown
    }
  }
  return "";
}

export function onExec(nr: i32): i32 {
  execAlerted = false;
  // The exec rules judge how the program was named (a relative path, a memfd by AT_EMPTY_PATH, a script's "#!"
  // name): the string as passed. The file that runs is judged from /proc/PID/exe at the exec lifecycle.
  const raw = Event.rawPath();
  const path = canonical(strPath(raw));
  pendingExec = path;
  pendingScriptArg = scriptArgument();
  const exe = exePath();
  let v = allow();
  // 4. memfd and temporary places
  const emptyPath = nr == SYS_execveat && (Event.arg(4) & 0x1000) != 0 && strPath(raw).length == 0;
  if (emptyPath) {
    v = strongest(v, fire(R_MEMFD_EXEC, "fd " + Event.arg(0).toString() + " executed (execveat AT_EMPTY_PATH)", "T1620"));
    execAlerted = true;
  } else if (path.startsWith("/memfd:") || isProcFd(path)) {
    v = strongest(v, fire(R_MEMFD_EXEC, path + " executed", "T1620"));
    execAlerted = true;
  } else if (
    path.startsWith("/") && underAny(tmpDirs, path) !== null && !programIn(tmpExecAllow, path) && wrStat(path) !== null
  ) {
    // Only a file that exists can run: a PATH search trying a missing /tmp/... entry is no execution.
    v = strongest(v, fire(R_TMP_EXEC, path + " executed", "T1059"));
    execAlerted = true;
  }
  // 5. a shell or interpreter started by a network service
  if (programIn(shells, path) && !programIn(serviceShellAllow, exe)) {
    let why = "";
    if (serving) why = "a program serving the network";
    else if (programIn(services, exe)) why = "a service";
    else if (servingElsewhere(exe)) why = "a program serving the network";
    if (why.length > 0) {
      v = strongest(v, fire(R_SERVICE_SHELL, path + " started from " + why, "T1059.004"));
    }
  }
  return v;
}

function isProcFd(path: string): bool {
  if (path.startsWith("/proc/self/fd/") || path.startsWith("/dev/fd/")) return true;
  if (!path.startsWith("/proc/")) return false;
  const rest = path.substring(6);
  const slash = rest.indexOf("/");
  return slash > 0 && rest.substring(slash).startsWith("/fd/");
}

/**
 * A live process (another than this one) that runs the same program and
 * serves the network: this process is most likely its forked child.
 */
function servingElsewhere(exe: string): bool {
  const keys = kvList(SERVING_PREFIX);
  const self = Event.pid().toString();
  for (let i = 0; i < keys.length; i++) {
    const pid = keys[i].substring(SERVING_PREFIX.length);
    if (pid == self) continue;
    const v = kvGetString(keys[i]);
    if (v === null || v != exe) continue;
    if (wrStat("/proc/" + pid) !== null) return true;
  }
  return false;
}

/**
 * At the exec lifecycle: which script the new program runs, and a relative
 * or indirect execution from a temporary place or memory that the pre hook
 * could not see.
 */
export function onExecLifecycle(): void {
  // EXEC: the script the new program runs is the execve path when the
  // kernel ran another executable for it (an interpreter, by its "#!" line).
  // Else, when the new program is an interpreter started by its own name (a
  // symbolic link counts as its own name), the script its arguments name.
  const newExe = exePath();
  scriptPath = "";
  scriptArg = "";
  if (pendingExec.length > 0) {
    let same = pendingExec == newExe;
    if (!same) {
      const a = wrStat(pendingExec);
      const b = wrStat(newExe);
      same = a !== null && b !== null && a.nodeId() == b.nodeId();
    }
    if (!same) scriptPath = pendingExec;
    else if (programIn(shells, newExe)) scriptArg = pendingScriptArg;
  }
  pendingExec = "";
  pendingScriptArg = "";
  // A relative or indirect execution from a temporary place or memory, seen
  // from the new program's resolved executable path.
  if (execAlerted) {
    execAlerted = false;
    return;
  }
  const exe = exePath();
  if (exe.startsWith("/memfd:")) {
    fireAlertOnly(R_MEMFD_EXEC, exe + " executed", "T1620");
  } else if (underAny(tmpDirs, exe) !== null && !programIn(tmpExecAllow, exe)) {
    fireAlertOnly(R_TMP_EXEC, exe + " executed", "T1059");
  }
}
