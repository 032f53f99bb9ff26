/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * idwrap_thunk: where the decide ftrace handler sends a watched task's
 * __x64_sys_<name>(regs). It is entered as that function would be: %rdi is
 * the syscall's pt_regs, the return address leads back to the syscall
 * dispatcher, and the handler put the original function's body (past its
 * fentry call) in %rsi, a register the one-argument function does not use,
 * and idwrap_pre()'s third argument in %rdx (1: observe only, the probe
 * could not copy the call's arguments; 0: decide), passed through untouched.
 *
 * idwrap_pre() may sleep. If it returns true the original runs: the thunk
 * restores the stack as it found it and jumps there, so no frame of ours is
 * on the stack while the original runs (it may block for a long time, and
 * the module may be gone when it returns). Otherwise the value it stored is
 * the syscall's result.
 */
#include <linux/linkage.h>
#include <asm/nospec-branch.h>

	.text
SYM_FUNC_START(idwrap_thunk)
	pushq	%rdi
	pushq	%rsi
	pushq	$0			/* idwrap_pre()'s *ret */
	movq	%rsp, %rsi
	call	idwrap_pre
	movl	%eax, %ecx
	popq	%rax
	popq	%rsi
	popq	%rdi
	testb	%cl, %cl
	jnz	.Lrun_original
	RET
.Lrun_original:
	JMP_NOSPEC rsi
SYM_FUNC_END(idwrap_thunk)
