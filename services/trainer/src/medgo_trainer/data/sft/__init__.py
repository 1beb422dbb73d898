"""SFT data: builders that turn the shared sources into one chat mixture (`build-sft`).

Each builder module reads one kind of source and yields `SftExample`s; `mixture` reads
the YAML recipe and validates it with every source file before anything is written;
`build` scrubs PHI, removes duplicates and evaluation leaks, samples by weight and
writes the dataset with its datasheet.
"""
