"""A stateless Redis-protocol → Kafka log proxy (issue 16).

Services whose log appenders speak Redis push JSON lines with ``LPUSH/RPUSH key value…``; the proxy
turns every value into one Kafka record (topic from a key→topic mapping, record key = the list key) and
answers ``:N`` only after Kafka acknowledged all of them (acks=all, idempotent producer).

A standalone package: it imports nothing from the portal, so ``python -m logproxy`` runs with only this
directory's parent on ``PYTHONPATH`` and ``logproxy/requirements.txt`` installed.
"""
