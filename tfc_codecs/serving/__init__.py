"""A single-machine server speaking TF Serving's REST and gRPC APIs, and its client.

`model_store` loads and polls SavedModel versions, `rest` and `grpc_service`
are the two front ends, `client` calls either, and `commands` adds the
`tfc_codecs serve` and `tfc_codecs client` sub-commands.
"""
