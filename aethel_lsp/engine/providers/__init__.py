"""Providers: named engines with several endpoints, limits, prices, a budget and a fallback.

`build.build_router` turns the user's `providers` / `fallback` / `budget` settings into a
`router.ProviderRouter` (what `create_engine` returns once any provider is configured);
each provider is an `engine.ProviderEngine` over an `endpoints.EndpointPool` of ordinary
backends.  `limits` holds the token buckets, retry delays and the budget guard; `prices`
the cost of a generation.
"""
