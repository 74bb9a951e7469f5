"""A tiny HTTP service for the isolated_service example: answers with where it runs.

Usage: python3 hello_http.py ADDRESS PORT [DATA_DIR]. GET / says the hostname (its UTS namespace's), its
pid (1: the first process of its PID namespace), its uid and the uid map of its user namespace (when
it may read its /proc: under the example's Landlock policy it may not, see below). It stops on
SIGTERM: as PID 1 of a PID namespace it would otherwise ignore the signal.

GET /landlock tries, from inside the service (its process, in its Landlock domain: a process that
enters its namespaces from outside is not), what its policy allows and what it forbids, and answers a
JSON object: each check's name -> "ok" or the errno's name (EACCES: Landlock refused). DATA_DIR is the
directory it may write.
"""

import errno
import http.server
import json
import os
import shutil
import signal
import socket
import socketserver
import subprocess
import sys


def _outcome(action):
    try:
        action()
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))


def _read(path):
    with open(path, "rb") as f:
        f.read(1)


def _write(path):
    with open(path, "w") as f:
        f.write("written by the service\n")


def _run(argv):
    # stdin inherited: /dev/null is beneath no rule of the example's policy, so opening it is refused
    status = subprocess.run(argv, check=False).returncode
    if status != 0:
        raise OSError(errno.EIO, f"exit status {status}")


def _copy_and_run(data):
    program = os.path.join(data, "true-copy")
    shutil.copyfile("/usr/bin/true", program)
    os.chmod(program, 0o755)
    _run([program])


def _bind(address, port):
    with socket.socket() as s:
        s.bind((address, port))


def _connect(address, port):
    with socket.socket() as s:
        s.settimeout(2)
        s.connect((address, port))


def landlock_checks(address, port, data):
    """Each check -> "ok" or an errno name. The example's policy allows reading and executing the
    system's files, reading and writing DATA_DIR, binding PORT; everything else on files, and TCP bind
    and connect (Landlock ABI 4), it forbids."""
    probe = os.path.join(data, "probe")
    checks = {
        "read_system_file": lambda: _read("/etc/os-release"),
        "read_program": lambda: _read(os.path.abspath(__file__)),
        "exec_system_program": lambda: _run(["/usr/bin/true"]),
        "write_data": lambda: _write(probe),
        "read_data": lambda: _read(probe),
        "truncate_data": lambda: os.truncate(probe, 0),
        "write_tmp": lambda: _write("/tmp/probe"),  # a writable tmpfs, beneath no rule
        "list_var": lambda: os.listdir("/var"),  # beneath no rule
        "read_proc": lambda: _read("/proc/self/status"),  # the service's own /proc, beneath no rule
        "exec_data": lambda: _copy_and_run(data),  # written there, but not executable from there
        "bind_other_port": lambda: _bind(address, port + 1),
        "connect_own_port": lambda: _connect(address, port),
    }
    return {name: _outcome(check) for name, check in checks.items()}


def _uid_map():
    try:
        with open("/proc/self/uid_map") as f:
            return " ".join(f.read().split())
    except OSError as e:
        return f"unreadable ({errno.errorcode.get(e.errno, e.errno)})"


class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        address, port = self.server.server_address[:2]
        if self.path == "/landlock" and self.server.data is not None:
            checks = landlock_checks(address, port, self.server.data)
            body = (json.dumps(checks, sort_keys=True) + "\n").encode()
            kind = "application/json"
        else:
            body = (f"hello from {socket.gethostname()}: pid {os.getpid()}, uid {os.getuid()}, "
                    f"uid_map {_uid_map()}, at {address}\n").encode()
            kind = "text/plain; charset=utf-8"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


class Server(http.server.ThreadingHTTPServer):
    data = None  # the directory the service may write

    def server_bind(self) -> None:
        # HTTPServer's asks DNS for the address's name (getfqdn), which has no answer in a private netns
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    address, port = sys.argv[1], int(sys.argv[2])
    with Server((address, port), Hello) as server:
        server.data = sys.argv[3] if len(sys.argv) > 3 else None
        server.serve_forever()


if __name__ == "__main__":
    main()
