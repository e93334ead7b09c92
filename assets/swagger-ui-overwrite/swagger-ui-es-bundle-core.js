// Not shipped: /docs loads swagger-ui-bundle.js (see assets/README.md).
