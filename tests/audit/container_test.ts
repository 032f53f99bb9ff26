/**
 * The container a cgroup path names, for each runtime's naming, and paths that name none.
 *
 * @module
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { containerOf } from "../../host/audit/container.ts";

const ID = "4f1c7e0d2b9a8c6e5f3a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e";

Deno.test("container ids from each runtime's cgroup names", () => {
  const cases: [string, ReturnType<typeof containerOf>][] = [
    [`/system.slice/docker-${ID}.scope`, { id: ID, runtime: "docker" }],
    [`/docker/${ID}`, { id: ID, runtime: "docker" }],
    [`/machine.slice/libpod-${ID}.scope`, { id: ID, runtime: "podman" }],
    [`/machine.slice/libpod-${ID}.scope/container`, { id: ID, runtime: "podman" }],
    [`/libpod_parent/libpod-${ID}`, { id: ID, runtime: "podman" }],
    [
      `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234_5678.slice/cri-containerd-${ID}.scope`,
      { id: ID, runtime: "containerd", orchestrator: "kubernetes" },
    ],
    [`/kubepods.slice/kubepods-pod1.slice/crio-${ID}.scope`, { id: ID, runtime: "cri-o", orchestrator: "kubernetes" }],
    [`/kubepods/burstable/pod0a1b2c3d-0000-4000-8000-000000000000/${ID}`, { id: ID, orchestrator: "kubernetes" }],
    // conmon (Podman's monitor) is not the container; plain services and the root name none.
    [`/machine.slice/libpod-conmon-${ID}.scope`, undefined],
    ["/system.slice/nginx.service", undefined],
    ["/user.slice/user-1000.slice/session-3.scope", undefined],
    ["/", undefined],
    [`/docker/${ID.slice(1)}`, undefined], // 63 digits
  ];
  for (const [path, want] of cases) assertEquals(containerOf(path), want, path);
  assertEquals(containerOf(undefined), undefined);
});
