"""A RabbitMQ cluster of three nodes on this machine, of its own (node names, ports, data
directory), never the machine's own broker: for the node-loss fault test.

Each node is a ``rabbitmq-server -detached`` with its own config file (listener port), data
and log directories and no plugins (the machine's broker holds the management ports), joined
to the first node with ``rabbitmqctl join_cluster``. A node can be killed (SIGKILL to its Erlang
VM), stopped (``rabbitmqctl stop``) and started again: it rejoins from its data directory."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from harness.infra import free_port, wait_for

RABBITMQ_USER = "rabbitmq"  # the Debian package's server runs as this user


@dataclass
class Node:
    name: str
    port: int
    dist_port: int
    home: Path

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ,
                "RABBITMQ_NODENAME": self.name, "RABBITMQ_NODE_PORT": str(self.port),
                "RABBITMQ_DIST_PORT": str(self.dist_port),
                "RABBITMQ_CONFIG_FILE": str(self.home / "rabbitmq.conf"),
                "RABBITMQ_MNESIA_BASE": str(self.home / "mnesia"),
                "RABBITMQ_LOG_BASE": str(self.home / "log"),
                "RABBITMQ_PID_FILE": str(self.home / "pid"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.home / "enabled_plugins")}

    def ctl(self, *args: str, timeout: float = 60, check: bool = True
            ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["rabbitmqctl", "-q", "-n", self.name, *args], env=self.env,
                              capture_output=True, text=True, timeout=timeout, check=check)

    def start(self) -> None:
        subprocess.run(["rabbitmq-server", "-detached"], env=self.env, check=True,
                       capture_output=True, timeout=30, cwd="/tmp")
        # Until the VM has registered with epmd, rabbitmqctl cannot even ask: retry.
        wait_for(lambda: self.ctl("await_startup", "--timeout", "20", timeout=30,
                                  check=False).returncode == 0, 120,
                 message=f"{self.name} started (log: {self.home / 'log'})")

    def kill(self) -> None:
        """SIGKILL to the node's Erlang VM: what a crashed host looks like to the others."""
        os.kill(int((self.home / "pid").read_text().strip()), signal.SIGKILL)

    def stop(self) -> None:
        """A graceful stop (an operator's restart, a rolling upgrade)."""
        self.ctl("stop", timeout=60)

    def running(self) -> bool:
        return self.ctl("ping", timeout=15, check=False).returncode == 0


class RabbitCluster:
    def __init__(self, base: Path, size: int = 3) -> None:
        tag = uuid.uuid4().hex[:6]
        self.base = base
        # Free ports, not fixed ones: a node left behind by an interrupted run, or anything
        # else listening, cannot make the next cluster fail to start.
        self.nodes = [Node(f"clientela{i + 1}-{tag}@localhost", free_port(), free_port(),
                           base / f"node{i + 1}") for i in range(size)]

    def uri(self, vhost: str = "") -> str:
        """AMQP_URI as production writes it: every node, ``;`` between them."""
        return ";".join(f"amqp://guest:guest@127.0.0.1:{node.port}/{vhost}"
                        for node in self.nodes)

    def start(self) -> RabbitCluster:
        try:
            return self._start()
        except BaseException:
            self.close()  # no node left running behind a failed start
            raise

    def _start(self) -> RabbitCluster:
        for node in self.nodes:
            node.home.mkdir(parents=True, exist_ok=True)
            (node.home / "rabbitmq.conf").write_text(
                f"listeners.tcp.local = 127.0.0.1:{node.port}\nloopback_users = none\n")
            (node.home / "enabled_plugins").write_text("[].\n")
        shutil.chown(self.base, RABBITMQ_USER, RABBITMQ_USER)
        for path in self.base.rglob("*"):
            shutil.chown(path, RABBITMQ_USER, RABBITMQ_USER)
        for node in self.nodes:
            node.start()
        first = self.nodes[0]
        for node in self.nodes[1:]:
            node.ctl("stop_app")
            node.ctl("join_cluster", first.name)
            node.ctl("start_app")
        wait_for(lambda: all(n.name in first.ctl("cluster_status").stdout
                             for n in self.nodes), 60, message="a cluster of three")
        return self

    def add_vhost(self, name: str) -> None:
        first = self.nodes[0]
        first.ctl("add_vhost", name)
        first.ctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")

    def running_nodes(self) -> int:
        for node in self.nodes:
            if node.running():
                status = node.ctl("cluster_status", "--formatter", "json", check=False)
                if status.returncode == 0:
                    return len(json.loads(status.stdout).get("running_nodes", []))
        return 0

    def close(self) -> None:
        for node in self.nodes:
            if node.running():
                node.ctl("stop", check=False)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(n.running() for n in self.nodes):
            time.sleep(0.5)
        shutil.rmtree(self.base, ignore_errors=True)
