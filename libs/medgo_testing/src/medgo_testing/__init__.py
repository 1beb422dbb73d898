"""Test and benchmark support code, kept out of every production package.

`postgres` runs a throwaway PostgreSQL server; `services` runs one of our services as a
child process through the shared supervisor (`medgo_common.supervise`); `schema_fuzz`
runs schemathesis over a service's own OpenAPI schema. Installed by
scripts/bootstrap.sh into the development venv; no Dockerfile installs it.
"""
