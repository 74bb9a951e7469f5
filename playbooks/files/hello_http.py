"""A tiny HTTP service for the isolated_service example: answers with where it runs.

Usage: python3 hello_http.py ADDRESS PORT. GET / says the hostname (its UTS namespace's), its pid (1:
the first process of its PID namespace), its uid and the uid map of its user namespace. It stops on
SIGTERM: as PID 1 of a PID namespace it would otherwise ignore the signal.
"""

import http.server
import os
import signal
import socket
import socketserver
import sys


class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        with open("/proc/self/uid_map") as f:
            uid_map = " ".join(f.read().split())
        body = (f"hello from {socket.gethostname()}: pid {os.getpid()}, uid {os.getuid()}, "
                f"uid_map {uid_map}, at {self.server.server_address[0]}\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


class Server(http.server.ThreadingHTTPServer):
    def server_bind(self) -> None:
        # HTTPServer's asks DNS for the address's name (getfqdn), which has no answer in a private netns
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    address, port = sys.argv[1], int(sys.argv[2])
    with Server((address, port), Hello) as server:
        server.serve_forever()


if __name__ == "__main__":
    main()
