"""The command line, `cargotrace up`, the demo and the simulator: wires the parts, holds no logic of theirs."""
