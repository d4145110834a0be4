"""Wire protocols of the devices a gateway reads: framing, checksums, decoding, command encoding."""
