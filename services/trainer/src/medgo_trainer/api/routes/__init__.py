"""Route families of the job API, one module each."""
