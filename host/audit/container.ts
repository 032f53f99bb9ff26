/**
 * The container a cgroup path names, as the container runtimes and systemd name their cgroups: Docker
 * (`/docker/<id>`, `docker-<id>.scope`), containerd and CRI-O under Kubernetes (`cri-containerd-<id>.scope`,
 * `crio-<id>.scope`, `/kubepods/…/pod<uid>/<id>`), Podman (`libpod-<id>.scope`, `/libpod_parent/libpod-<id>`).
 * A container id is 64 hex digits; conmon's own cgroup (`libpod-conmon-<id>`) is the monitor, not the container.
 *
 * @module
 */

/** What a cgroup says about a container. */
export interface ContainerInfo {
  id: string;
  /** docker, containerd, cri-o, podman; absent when the path names only an id (a bare `/kubepods/…/<id>`). */
  runtime?: string;
  /** kubernetes, for a cgroup under `kubepods`. */
  orchestrator?: string;
}

const RUNTIMES: [RegExp, string][] = [
  [/^docker-$|^docker\/$/, "docker"],
  [/^cri-containerd-$/, "containerd"],
  [/^crio-$/, "cri-o"],
  [/^libpod-$|^libpod\/$/, "podman"],
];

/** The container a cgroup path names, if it names one (the deepest component with a 64-hex id). */
export function containerOf(cgroup: string | undefined): ContainerInfo | undefined {
  if (!cgroup) return undefined;
  const parts = cgroup.split("/").filter(Boolean);
  for (let i = parts.length - 1; i >= 0; i--) {
    const m = /^(.*?)([0-9a-f]{64})(?:\.scope)?$/.exec(parts[i]);
    if (!m) continue;
    if (m[1].includes("conmon")) return undefined;
    // `docker/<id>` (cgroup v1, cgroupfs driver): the runtime is the parent component.
    const prefix = m[1] || (i > 0 ? `${parts[i - 1]}/` : "");
    const info: ContainerInfo = { id: m[2] };
    const runtime = RUNTIMES.find(([re]) => re.test(prefix))?.[1];
    if (runtime) info.runtime = runtime;
    if (parts.some((p) => p.startsWith("kubepods"))) info.orchestrator = "kubernetes";
    return info;
  }
  return undefined;
}
