"""The item API's Lambda handlers: the code `functions` deploys, one zip per function.

Each handler module is packaged at the zip's root together with `common` (see multiregion.packaging), so
the modules must import without the `multiregion` package and use only what the Lambda Python runtime
ships: the standard library and boto3. Handler strings: `put_item.handler`, `get_item.handler`,
`health.handler`.
"""
