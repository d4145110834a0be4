import logging

from tracking_api.ingest.worker import run
from tracking_api.settings import Settings

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
run(Settings())
