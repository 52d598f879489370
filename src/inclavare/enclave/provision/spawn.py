"""The spawn-protocol messages of secret provisioning (runtime/process/messages.py draws the
sequence; host_relay.py says what rune does with each, tunnel.py what init sends)."""

CONNECT = "kbs-connect"  # init -> rune: {host, port}, with a socketpair end over the control socket
CONNECTED = "kbs-connected"  # rune -> init: {} or {"error": reason}
DONE = "kbs-done"  # init -> rune: provisioning is over, close every connection
