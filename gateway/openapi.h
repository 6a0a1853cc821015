/* The OpenAPI 3.1 description served at GET /openapi.json (kept beside docs/api.md). */
#ifndef VL_GATEWAY_OPENAPI_H
#define VL_GATEWAY_OPENAPI_H

extern const char openapi_json[];

#endif
