/**
 * x86_64 system call numbers that wrappers commonly declare (from
 * asm/unistd_64.h; the ABI speaks x86_64 numbers only).
 */

export const SYS_read: i32 = 0;
export const SYS_write: i32 = 1;
export const SYS_open: i32 = 2;
export const SYS_close: i32 = 3;
export const SYS_getpid: i32 = 39;
export const SYS_socket: i32 = 41;
export const SYS_connect: i32 = 42;
export const SYS_accept: i32 = 43;
export const SYS_sendto: i32 = 44;
export const SYS_bind: i32 = 49;
export const SYS_listen: i32 = 50;
export const SYS_clone: i32 = 56;
export const SYS_fork: i32 = 57;
export const SYS_vfork: i32 = 58;
export const SYS_execve: i32 = 59;
export const SYS_kill: i32 = 62;
export const SYS_truncate: i32 = 76;
export const SYS_rename: i32 = 82;
export const SYS_mkdir: i32 = 83;
export const SYS_rmdir: i32 = 84;
export const SYS_creat: i32 = 85;
export const SYS_link: i32 = 86;
export const SYS_unlink: i32 = 87;
export const SYS_symlink: i32 = 88;
export const SYS_chmod: i32 = 90;
export const SYS_fchmod: i32 = 91;
export const SYS_chown: i32 = 92;
export const SYS_fchown: i32 = 93;
export const SYS_lchown: i32 = 94;
export const SYS_ptrace: i32 = 101;
export const SYS_setuid: i32 = 105;
export const SYS_setgid: i32 = 106;
export const SYS_getppid: i32 = 110;
export const SYS_openat: i32 = 257;
export const SYS_mkdirat: i32 = 258;
export const SYS_fchownat: i32 = 260;
export const SYS_unlinkat: i32 = 263;
export const SYS_renameat: i32 = 264;
export const SYS_linkat: i32 = 265;
export const SYS_symlinkat: i32 = 266;
export const SYS_fchmodat: i32 = 268;
export const SYS_accept4: i32 = 288;
export const SYS_renameat2: i32 = 316;
export const SYS_execveat: i32 = 322;
export const SYS_clone3: i32 = 435;
export const SYS_openat2: i32 = 437;

// Further numbers wrappers need (constants only; syscallNumber/syscallNameOf know the list above).
export const SYS_pwrite64: i32 = 18;
export const SYS_writev: i32 = 20;
export const SYS_sendfile: i32 = 40;
export const SYS_ftruncate: i32 = 77;
export const SYS_chdir: i32 = 80;
export const SYS_chroot: i32 = 161;
export const SYS_mount: i32 = 165;
export const SYS_init_module: i32 = 175;
export const SYS_kexec_load: i32 = 246;
export const SYS_unshare: i32 = 272;
export const SYS_splice: i32 = 275;
export const SYS_pwritev: i32 = 296;
export const SYS_setns: i32 = 308;
export const SYS_process_vm_writev: i32 = 311;
export const SYS_finit_module: i32 = 313;
export const SYS_kexec_file_load: i32 = 320;
export const SYS_bpf: i32 = 321;
export const SYS_copy_file_range: i32 = 326;
export const SYS_pwritev2: i32 = 328;
export const SYS_fchmodat2: i32 = 452;

/** The open family, which the seccomp source also reports in post. */
export const OPEN_FAMILY: StaticArray<i32> = [SYS_open, SYS_openat, SYS_openat2, SYS_creat];

const NAMES: StaticArray<string> = [
  "read", "write", "open", "close", "getpid", "socket", "connect", "accept", "sendto", "bind", "listen",
  "clone", "fork", "vfork", "execve", "kill", "truncate", "rename", "mkdir", "rmdir", "creat", "link",
  "unlink", "symlink", "chmod", "fchmod", "chown", "fchown", "lchown", "ptrace", "setuid", "setgid",
  "getppid", "openat", "mkdirat", "fchownat", "unlinkat", "renameat", "linkat", "symlinkat", "fchmodat",
  "accept4", "renameat2", "execveat", "clone3", "openat2",
];
const NUMBERS: StaticArray<i32> = [
  SYS_read, SYS_write, SYS_open, SYS_close, SYS_getpid, SYS_socket, SYS_connect, SYS_accept, SYS_sendto,
  SYS_bind, SYS_listen, SYS_clone, SYS_fork, SYS_vfork, SYS_execve, SYS_kill, SYS_truncate, SYS_rename,
  SYS_mkdir, SYS_rmdir, SYS_creat, SYS_link, SYS_unlink, SYS_symlink, SYS_chmod, SYS_fchmod, SYS_chown,
  SYS_fchown, SYS_lchown, SYS_ptrace, SYS_setuid, SYS_setgid, SYS_getppid, SYS_openat, SYS_mkdirat,
  SYS_fchownat, SYS_unlinkat, SYS_renameat, SYS_linkat, SYS_symlinkat, SYS_fchmodat, SYS_accept4,
  SYS_renameat2, SYS_execveat, SYS_clone3, SYS_openat2,
];

/**
 * The number of a call listed above, or -1. Only these names are known
 * here; for any other call pass its number (the host knows them all).
 */
export function syscallNumber(name: string): i32 {
  for (let i = 0; i < NAMES.length; i++) {
    if (NAMES[i] == name) return NUMBERS[i];
  }
  return -1;
}

/** The name of a call listed above, or null (Event.syscallName() asks the host for any call). */
export function syscallNameOf(nr: i32): string | null {
  for (let i = 0; i < NUMBERS.length; i++) {
    if (NUMBERS[i] == nr) return NAMES[i];
  }
  return null;
}
