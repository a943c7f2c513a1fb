"""Real Elasticsearch / OpenSearch nodes for the tests (``engine``) and the lifecycle
APIs their test distributions lack (``lifecycle_double``)."""
