"""The `perpchain` command line: parses arguments and wires node/, rpc/ and localnet/.

The only package that imports all three: node/ runs a node and imports neither rpc/ nor
localnet/; rpc/ serves a node; localnet/ starts processes of this command.
"""
