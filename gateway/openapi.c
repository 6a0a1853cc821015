/* The OpenAPI document of the HTTP API; docs/api.md is the prose version of the same. */
#include "gateway/openapi.h"

#define S(...) #__VA_ARGS__
// clang-format off
const char openapi_json[] = S({
  "openapi": "3.1.0",
  "info": {"title": "vlembed", "version": "1",
           "description": "Multimodal embeddings (Qwen3-VL-Embedding). OpenAI-compatible /v1/embeddings plus images, videos, instructions, Matryoshka dimensions, quantised encodings, a preview route, timings and an embedding-space fingerprint. See docs/api.md."},
  "paths": {
    "/v1/embeddings": {"post": {
      "summary": "Embed items (one vector per item)",
      "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/EmbeddingRequest"}}}},
      "responses": {
        "200": {"description": "vectors", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/EmbeddingResponse"}}}},
        "400": {"$ref": "#/components/responses/Error"}, "413": {"$ref": "#/components/responses/Error"},
        "415": {"$ref": "#/components/responses/Error"}, "422": {"$ref": "#/components/responses/Error"},
        "429": {"$ref": "#/components/responses/Error"}, "500": {"$ref": "#/components/responses/Error"},
        "502": {"$ref": "#/components/responses/Error"}, "503": {"$ref": "#/components/responses/Error"},
        "504": {"$ref": "#/components/responses/Error"}}}},
    "/v1/embeddings/preview": {"post": {
      "summary": "Preprocess without running the model: rendered prompt, token counts, resized sizes, frame indices",
      "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/EmbeddingRequest"}}}},
      "responses": {"200": {"description": "one preview per item"}, "400": {"$ref": "#/components/responses/Error"}}}},
    "/health": {"get": {"summary": "Liveness", "responses": {"200": {"description": "alive"}}}},
    "/ready": {"get": {"summary": "Readiness: at least one worker ready", "responses": {"200": {"description": "ready"}, "503": {"description": "no ready worker"}}}},
    "/metrics": {"get": {"summary": "Prometheus metrics (text format 0.0.4)", "responses": {"200": {"description": "metrics"}}}},
    "/v1/models": {"get": {"summary": "The served model", "responses": {"200": {"description": "list of one model"}}}},
    "/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3.1"}}}}
  },
  "components": {
    "responses": {"Error": {"description": "OpenAI-shaped error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}},
    "schemas": {
      "Error": {"type": "object", "properties": {"error": {"type": "object", "properties": {
        "message": {"type": "string"}, "type": {"type": "string"}, "param": {"type": ["string", "null"]}, "code": {"type": ["string", "null"]}}}}},
      "Source": {"type": "string", "description": "http(s) URL or data:<mime>;base64,<data> URI"},
      "ContentPart": {"oneOf": [
        {"type": "string"},
        {"type": "object", "properties": {"type": {"enum": ["text"]}, "text": {"type": "string"}}, "required": ["type", "text"], "additionalProperties": false},
        {"type": "object", "properties": {"type": {"enum": ["image_url"]}, "image_url": {"oneOf": [{"$ref": "#/components/schemas/Source"}, {"type": "object", "properties": {"url": {"$ref": "#/components/schemas/Source"}, "detail": {}}}]}}, "required": ["type", "image_url"]},
        {"type": "object", "properties": {"type": {"enum": ["video_url"]}, "video_url": {"oneOf": [{"$ref": "#/components/schemas/Source"}, {"type": "object", "properties": {"url": {"$ref": "#/components/schemas/Source"}}}]}}, "required": ["type", "video_url"]},
        {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"], "additionalProperties": false},
        {"type": "object", "properties": {"image": {"$ref": "#/components/schemas/Source"}}, "required": ["image"], "additionalProperties": false},
        {"type": "object", "properties": {"video": {"oneOf": [{"$ref": "#/components/schemas/Source"}, {"type": "array", "items": {"$ref": "#/components/schemas/Source"}}]}}, "required": ["video"], "additionalProperties": false}]},
      "Item": {"oneOf": [
        {"type": "string"},
        {"type": "array", "items": {"$ref": "#/components/schemas/ContentPart"}},
        {"type": "object", "additionalProperties": false, "properties": {
          "text": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
          "image": {"oneOf": [{"$ref": "#/components/schemas/Source"}, {"type": "array", "items": {"$ref": "#/components/schemas/Source"}}]},
          "video": {"oneOf": [{"$ref": "#/components/schemas/Source"}, {"type": "array", "items": {"$ref": "#/components/schemas/Source"}}]},
          "content": {"type": "array", "items": {"$ref": "#/components/schemas/ContentPart"}},
          "instruction": {"type": "string"}}}]},
      "EmbeddingRequest": {"type": "object", "additionalProperties": false, "properties": {
        "input": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "integer"}},
                             {"type": "array", "items": {"oneOf": [{"type": "array", "items": {"type": "integer"}}, {"$ref": "#/components/schemas/Item"}]}},
                             {"$ref": "#/components/schemas/Item"}]},
        "messages": {"type": "array", "items": {"type": "object", "properties": {"role": {"enum": ["system", "user", "assistant"]}, "content": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"$ref": "#/components/schemas/ContentPart"}}]}}}},
        "continue_final_message": {"type": "boolean"}, "add_generation_prompt": {"type": "boolean"}, "add_special_tokens": {"type": "boolean"},
        "model": {"type": "string"}, "user": {"type": "string"}, "instruction": {"type": "string"},
        "dimensions": {"type": "integer", "minimum": 1, "description": "keep the first d components and renormalise (Matryoshka); at most the model width"},
        "encoding_format": {"enum": ["float", "base64", "int8", "uint8", "binary"], "default": "float"},
        "timeout": {"type": "number", "description": "seconds"},
        "video": {"type": "object", "properties": {"fps": {"type": "number"}, "max_frames": {"type": "integer"}, "max_pixels": {"type": "integer"}}}}},
      "EmbeddingResponse": {"type": "object", "properties": {
        "object": {"const": "list"},
        "data": {"type": "array", "items": {"type": "object", "properties": {"object": {"const": "embedding"}, "index": {"type": "integer"}, "embedding": {"oneOf": [{"type": "array", "items": {"type": "number"}}, {"type": "string"}]}}}},
        "model": {"type": "string"},
        "usage": {"type": "object", "properties": {"prompt_tokens": {"type": "integer"}, "total_tokens": {"type": "integer"}, "text_tokens": {"type": "integer"}, "image_tokens": {"type": "integer"}, "video_tokens": {"type": "integer"}, "images": {"type": "integer"}, "videos": {"type": "integer"}}},
        "timings": {"type": "object", "additionalProperties": {"type": "number"}},
        "fingerprint": {"type": "object", "properties": {"id": {"type": "string"}, "checkpoint": {"type": "string"}, "preprocessing": {"type": "string"}, "dimensions": {"type": "integer"}, "encoding": {"type": "string"}}}}}
    }
  }
});
// clang-format on
