import argparse
import logging

from gateway.runner import run

parser = argparse.ArgumentParser(prog="python -m gateway", description="run an edge gateway from its profile")
parser.add_argument("--config", required=True, metavar="FILE")
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
run(parser.parse_args().config)
