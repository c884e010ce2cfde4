"""Reading models: the bounded GGUF reader, ModelSpec, the catalog and quantization rules."""
