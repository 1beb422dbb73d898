"""The trainer's job API (`medgo-trainer-api`, port 8003): submit a stage run or an SFT
data build (`build-sft`), watch it, read its log, cancel it. Jobs live in SQLite under
`jobs_dir`, so they survive restarts; they run through the local executor
(`executors.local`).
"""
