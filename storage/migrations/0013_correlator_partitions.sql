-- The correlator's work in partitions (storage/vocabulary.py PARTITIONS, PARTITION_KEY): a row's
-- partition is the first byte of its key's md5 modulo 16, stable across servers and versions.
CREATE FUNCTION cargotrace_partition(key text) RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT get_byte(decode(md5(key), 'hex'), 0) % 16
$$;

-- One cursor per table and partition, each starting where the single cursor of the table stood.
INSERT INTO consumer_cursors (consumer, txid, id)
SELECT c.consumer || ':' || p, c.txid, c.id
FROM consumer_cursors c CROSS JOIN generate_series(0, 15) AS p
WHERE c.consumer IN ('status:tag_observations', 'status:positions');
DELETE FROM consumer_cursors WHERE consumer IN ('status:tag_observations', 'status:positions');
