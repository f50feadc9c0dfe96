"""One pod run for real: its containers as host processes in a node namespace.

This is the kubelet's sync loop cut down to what the agent DaemonSet needs,
one thread per pod:

* init containers run one after the other to completion, then the
  containers start together, each as ``ip netns exec NS command args...``;
* an exited container is restarted (restartPolicy Always/OnFailure) with a
  back-off of 1 s doubling to 10 s (the kubelet's is 10 s to 5 min, too slow
  for tests), or left terminated (Never), which settles the phase;
* readiness probes (httpGet, tcpSocket, exec) decide the container's
  ``ready`` and the pod's Ready/ContainersReady conditions; liveness probes
  restart the container after failureThreshold failures;
* deletion: SIGTERM, SIGKILL after the grace period, then the pod object is
  removed with grace 0, which is how a kubelet confirms it has stopped.

The pod's status is written with a JSON merge patch of the whole status
each time it changes: this worker owns every field of it, the way the
kubelet does.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import nsnet, podenv, procs, rest

logger = logging.getLogger(__name__)

BACKOFF_START = 1.0
BACKOFF_MAX = 10.0
TICK = 0.1
IP = shutil.which("ip") or "/usr/sbin/ip"


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class WorkerContext:
    """What every pod worker shares, given by the launcher."""

    api: rest.Rest
    log_dir: Path
    # The host part of a container's environment for this pod.
    base_env: Callable[[dict[str, Any]], dict[str, str]]
    lookup: podenv.Lookup


@dataclass
class _ProbeState:
    successes: int = 0
    failures: int = 0
    next_at: float = 0.0


@dataclass
class _Container:
    spec: dict[str, Any]
    init: bool
    proc: subprocess.Popen[bytes] | None = None
    rec: procs.Recorded | None = None
    started_at: str | None = None
    started_mono: float = 0.0
    restart_count: int = 0
    backoff: float = BACKOFF_START
    next_start: float = 0.0
    state: dict[str, Any] = field(
        default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}}
    )
    last_state: dict[str, Any] = field(default_factory=dict)
    ready: bool = False
    finished: bool = False  # terminated and not to be restarted
    exit_code: int | None = None
    readiness: _ProbeState = field(default_factory=_ProbeState)
    liveness: _ProbeState = field(default_factory=_ProbeState)

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class PodWorker(threading.Thread):
    """Runs one pod until it is deleted or the launcher stops."""

    def __init__(self, pod: dict[str, Any], netns: str, host_ip: str, ctx: WorkerContext) -> None:
        meta = pod["metadata"]
        super().__init__(name=f"pod-{meta['namespace']}/{meta['name']}", daemon=True)
        self.pod = pod
        self.netns = netns
        self.host_ip = host_ip
        self.ctx = ctx
        self.uid: str = meta["uid"]
        self.ref = f"{meta['namespace']}/{meta['name']}"
        spec = pod["spec"]
        self.policy: str = spec.get("restartPolicy", "Always")
        self.init = [_Container(c, init=True) for c in spec.get("initContainers", [])]
        self.main = [_Container(c, init=False) for c in spec["containers"]]
        self._deleting = threading.Event()
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._start_time = now_rfc3339()
        self._since: dict[str, tuple[str, str]] = {}
        self._pushed: dict[str, Any] | None = None
        self._env: dict[str, str] | None = None
        if meta.get("deletionTimestamp"):
            self._deleting.set()  # deleted before we ever saw it run

    # ------------------------------------------------------------ control

    def update(self, pod: dict[str, Any]) -> None:
        """A newer version of the pod from the watch."""
        self.pod = pod
        if pod["metadata"].get("deletionTimestamp"):
            self._deleting.set()
            self._wake.set()

    def gone(self) -> None:
        """The pod object was removed without us (force delete)."""
        self._deleting.set()
        self._wake.set()

    def stop(self) -> None:
        """Stop the processes and leave the pod object as it is."""
        self._stopping.set()
        self._wake.set()

    def log_path(self, container: str) -> Path:
        ns, name = self.ref.split("/")
        return self.ctx.log_dir / f"{ns}_{name}_{container}.log"

    def pid(self, container: str) -> int | None:
        for c in self.init + self.main:
            if c.name == container and c.running and c.proc is not None:
                return c.proc.pid
        return None

    # ------------------------------------------------------------ the loop

    def run(self) -> None:
        try:
            while not self._stopping.is_set():
                if self._deleting.is_set():
                    self._terminate_all(self._grace())
                    self._confirm_deletion()
                    return
                self._step()
                self._push_status()
                self._wake.wait(TICK)
                self._wake.clear()
        except Exception:
            logger.exception("pod worker %s failed", self.ref)
        finally:
            self._terminate_all(self._grace())

    def _grace(self) -> float:
        meta, spec = self.pod["metadata"], self.pod["spec"]
        grace = meta.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = spec.get("terminationGracePeriodSeconds", 30)
        return float(grace)

    def _step(self) -> None:
        for c in self.init:
            if c.exit_code == 0 and not c.running:
                continue
            self._drive(c)
            return  # one init container at a time, in order
        for c in self.main:
            self._drive(c)

    def _drive(self, c: _Container) -> None:
        now = time.monotonic()
        if c.proc is not None and c.proc.poll() is not None:
            self._on_exit(c, c.proc.returncode, now)
        if c.finished:
            return
        if c.proc is None:
            if now >= c.next_start:
                self._start(c, now)
            return
        self._probe(c, now)

    def _restart_wanted(self, c: _Container, code: int) -> bool:
        if c.init:
            return code != 0 and self.policy != "Never"
        return self.policy == "Always" or (self.policy == "OnFailure" and code != 0)

    def _on_exit(self, c: _Container, code: int, now: float) -> None:
        terminated = {
            "exitCode": code,
            "reason": "Completed" if code == 0 else "Error",
            "startedAt": c.started_at,
            "finishedAt": now_rfc3339(),
        }
        logger.info("pod %s container %s exited with %s", self.ref, c.name, code)
        c.proc, c.rec, c.ready, c.exit_code = None, None, False, code
        c.readiness = _ProbeState()
        c.liveness = _ProbeState()
        if self._restart_wanted(c, code):
            c.last_state = {"terminated": terminated}
            c.state = {"waiting": {"reason": "CrashLoopBackOff"}}
            c.next_start = now + c.backoff
            c.backoff = min(c.backoff * 2, BACKOFF_MAX)
            c.restart_count += 1
        else:
            c.state = {"terminated": terminated}
            c.finished = not (c.init and code == 0)

    def _start(self, c: _Container, now: float) -> None:
        try:
            if self._env is None:
                self._env = self.ctx.base_env(self.pod)
            env = podenv.container_env(self._pod_view(), c.spec, self._env, self.ctx.lookup)
            argv = podenv.container_argv(c.spec, env)
        except (podenv.ContainerConfigError, rest.ApiError, OSError) as exc:
            # OSError: the API server was unreachable for a lookup; retried.
            c.state = {"waiting": {"reason": "CreateContainerConfigError", "message": str(exc)}}
            c.next_start = now + BACKOFF_MAX
            return
        cwd = Path(c.spec.get("workingDir") or self.ctx.log_dir)
        full = [IP, "netns", "exec", self.netns, *argv]
        log = self.log_path(c.name)
        # Started from this worker's thread, which lives until the process
        # has been stopped: the parent-death signal fires only if we crash.
        c.proc = procs.start(f"{self.ref}/{c.name}", full, log=log, env=env, cwd=cwd)
        c.rec = procs.Recorded(c.name, c.proc.pid, "")
        c.started_at = now_rfc3339()
        c.started_mono = now
        c.state = {"running": {"startedAt": c.started_at}}
        c.exit_code = None
        logger.info(
            "pod %s container %s started as pid %d in %s", self.ref, c.name, c.proc.pid, self.netns
        )

    def _pod_view(self) -> dict[str, Any]:
        """The pod as the downward API sees it: with the addresses we are about to report."""
        ip = [{"ip": self.host_ip}]
        status = {"hostIP": self.host_ip, "hostIPs": ip, "podIP": self.host_ip, "podIPs": ip}
        return {**self.pod, "status": {**self.pod.get("status", {}), **status}}

    # ------------------------------------------------------------ probes

    def _probe(self, c: _Container, now: float) -> None:
        readiness = c.spec.get("readinessProbe")
        if readiness is None:
            c.ready = not c.init
        elif self._due(readiness, c.readiness, c, now):
            ok = self._run_probe(readiness, c)
            st = c.readiness
            st.successes, st.failures = (st.successes + 1, 0) if ok else (0, st.failures + 1)
            if ok and st.successes >= readiness.get("successThreshold", 1):
                c.ready = True
            if not ok and st.failures >= readiness.get("failureThreshold", 3):
                c.ready = False
        liveness = c.spec.get("livenessProbe")
        if liveness is not None and self._due(liveness, c.liveness, c, now):
            ok = self._run_probe(liveness, c)
            c.liveness.failures = 0 if ok else c.liveness.failures + 1
            if c.liveness.failures >= liveness.get("failureThreshold", 3) and c.proc is not None:
                logger.info("pod %s container %s failed liveness; restarting", self.ref, c.name)
                grace = liveness.get("terminationGracePeriodSeconds", self._grace())
                self._terminate(c, float(grace))

    @staticmethod
    def _due(probe: Mapping[str, Any], st: _ProbeState, c: _Container, now: float) -> bool:
        if st.next_at == 0.0:
            st.next_at = c.started_mono + probe.get("initialDelaySeconds", 0)
        if now < st.next_at:
            return False
        st.next_at = now + probe.get("periodSeconds", 10)
        return True

    def _run_probe(self, probe: Mapping[str, Any], c: _Container) -> bool:
        timeout = float(probe.get("timeoutSeconds", 1))
        try:
            if "httpGet" in probe:
                h = probe["httpGet"]
                status = nsnet.http_get(
                    self.netns,
                    h.get("host") or self.host_ip,
                    self._port(h["port"], c),
                    h.get("path", "/"),
                    scheme=h.get("scheme", "HTTP"),
                    headers={x["name"]: x["value"] for x in h.get("httpHeaders", [])},
                    timeout=timeout,
                )
                return 200 <= status < 400
            if "tcpSocket" in probe:
                t = probe["tcpSocket"]
                port = self._port(t["port"], c)
                nsnet.connect(self.netns, t.get("host") or self.host_ip, port, timeout).close()
                return True
            if "exec" in probe:
                env = podenv.container_env(
                    self._pod_view(), c.spec, self._env or {}, self.ctx.lookup
                )
                argv = [IP, "netns", "exec", self.netns, *probe["exec"]["command"]]
                done = subprocess.run(
                    argv, env=env, capture_output=True, timeout=timeout, check=False
                )
                return done.returncode == 0
        except (OSError, subprocess.TimeoutExpired, ValueError):
            return False
        logger.warning("pod %s: probe kind not supported (grpc?): %s", self.ref, probe)
        return False

    @staticmethod
    def _port(port: int | str, c: _Container) -> int:
        if isinstance(port, int) or str(port).isdigit():
            return int(port)
        for p in c.spec.get("ports", []):
            if p.get("name") == port:
                return int(p["containerPort"])
        raise ValueError(f"no container port named {port!r}")

    # ------------------------------------------------------------ stopping

    def _terminate(self, c: _Container, grace: float) -> None:
        if c.proc is not None and c.rec is not None:
            procs.stop(c.rec, grace=grace, proc=c.proc)

    def _terminate_all(self, grace: float) -> None:
        running = [c for c in self.init + self.main if c.proc is not None]
        threads = [threading.Thread(target=self._terminate, args=(c, grace)) for c in running]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def _confirm_deletion(self) -> None:
        ns, name = self.ref.split("/")
        body = {"gracePeriodSeconds": 0, "preconditions": {"uid": self.uid}}
        try:
            self.ctx.api.delete(f"/api/v1/namespaces/{ns}/pods/{name}", body)
        except rest.ApiError as exc:
            if exc.status not in (404, 409):
                raise
        logger.info("pod %s stopped and removed", self.ref)

    # ------------------------------------------------------------ status

    def _condition(self, kind: str, ok: bool) -> dict[str, Any]:
        status = "True" if ok else "False"
        prev = self._since.get(kind)
        if prev is None or prev[0] != status:
            self._since[kind] = (status, now_rfc3339())
        return {"type": kind, "status": status, "lastTransitionTime": self._since[kind][1]}

    def _container_status(self, c: _Container) -> dict[str, Any]:
        return {
            "name": c.name,
            "image": c.spec.get("image", ""),
            "imageID": "",
            "containerID": f"launcher://{c.proc.pid}" if c.proc is not None else "",
            "ready": c.ready,
            "started": c.running,
            "restartCount": c.restart_count,
            "state": c.state,
            "lastState": c.last_state,
        }

    def status(self) -> dict[str, Any]:
        initialized = all(c.exit_code == 0 and not c.running for c in self.init)
        containers_ready = initialized and all(c.ready for c in self.main)
        if not initialized or not any(c.started_at for c in self.main):
            phase = "Pending"
        elif all(c.finished for c in self.main):
            phase = "Succeeded" if all(c.exit_code == 0 for c in self.main) else "Failed"
        else:
            phase = "Running"
        if any(c.finished and c.exit_code for c in self.init):
            phase = "Failed"
        ip = [{"ip": self.host_ip}]
        return {
            "phase": phase,
            "conditions": [
                self._condition("PodReadyToStartContainers", True),
                self._condition("Initialized", initialized),
                self._condition("ContainersReady", containers_ready),
                self._condition("Ready", containers_ready),
                self._condition("PodScheduled", True),
            ],
            # The processes live in the node's namespace: host networking,
            # so the pod's address is the node's.
            "hostIP": self.host_ip,
            "hostIPs": ip,
            "podIP": self.host_ip,
            "podIPs": ip,
            "startTime": self._start_time,
            "initContainerStatuses": [self._container_status(c) for c in self.init] or None,
            "containerStatuses": [self._container_status(c) for c in self.main],
        }

    def _push_status(self) -> None:
        status = self.status()
        if status == self._pushed:
            return
        ns, name = self.ref.split("/")
        try:
            self.ctx.api.merge_patch(
                f"/api/v1/namespaces/{ns}/pods/{name}/status", {"status": status}
            )
        except rest.ApiError as exc:
            if exc.status == 404:
                self._deleting.set()
                return
            logger.warning("pod %s: status update failed: %s", self.ref, exc)
            return
        except OSError as exc:
            # The API server restarting or going away first at teardown:
            # the next tick tries again.
            logger.debug("pod %s: status update failed: %s", self.ref, exc)
            return
        self._pushed = status
