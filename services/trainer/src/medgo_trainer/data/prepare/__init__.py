"""Corpus preparation: raw jsonl/txt/csv → cleaned, de-identified, de-duplicated shards.

Steps (each reports what it removed): `clean` (NFKC, boilerplate, length, Chinese
ratio), `deid` (the shared PHI redactor; fails closed), `dedup` (exact hash, then
MinHash-LSH near-duplicates). `pipeline.prepare_corpus` streams documents through
them with a process pool for the per-document work and one single-pass de-dup;
`scaleout.prepare_corpus_datatrove` runs the same steps as datatrove stages (blocks in
`datatrove_steps`) on datatrove's local, Slurm or Ray executor.
"""
