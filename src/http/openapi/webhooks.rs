//! The top-level `webhooks` section of the v2 document (OpenAPI 3.1): the
//! request a webhook endpoint receives for each event (API.md §8), so
//! generators and docs show the payload and its signature headers. utoipa 5
//! has no field for it; the documents add it as a top-level member.

use serde_json::{Value, json};

/// `{"customerEvent": <path item>}`: a `POST` of an `Event` with the three Standard Webhooks headers.
pub fn section() -> Value {
    json!({
        "customerEvent": {
            "post": {
                "summary": "An event, POSTed to a webhook endpoint",
                "description": "Each event is POSTed to every endpoint of its account subscribed to its type. The \
                    body is the event exactly as `GET /v2/events/{id}` answers it. Verify the signature before \
                    trusting it, as the Standard Webhooks specification says: the HMAC-SHA256 of \
                    `{webhook-id}.{webhook-timestamp}.{body}`, keyed by the endpoint's secret (the base64 after \
                    `whsec_`, decoded), base64-encoded, must equal the part after `v1,` of one of the signatures \
                    in `webhook-signature`; refuse a timestamp far from your clock. A `2xx` answer within 10 s is \
                    a delivery; anything else is retried after about 5 s, 1 min, 10 min, 1 h, 6 h and 24 h, then \
                    given up. Delivery is at least once (use `webhook-id` to drop a repeat) and usually, not \
                    always, in order.",
                "operationId": "receiveCustomerEvent",
                "tags": ["webhooks"],
                "security": [],
                "parameters": [
                    {
                        "name": "webhook-id",
                        "in": "header",
                        "required": true,
                        "description": "The event's id: the same on every attempt to deliver it.",
                        "schema": {"type": "string", "pattern": "^evt_[0-9A-Z]{26}$"},
                        "example": "evt_01JDQ8ZK3V5W6X7Y8Z9A0B1C2E"
                    },
                    {
                        "name": "webhook-timestamp",
                        "in": "header",
                        "required": true,
                        "description": "When this attempt was signed, in Unix seconds.",
                        "schema": {"type": "string", "pattern": "^[0-9]+$"},
                        "example": "1764326000"
                    },
                    {
                        "name": "webhook-signature",
                        "in": "header",
                        "required": true,
                        "description": "`v1,` and the base64 of the HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{body}`; \
                            several signatures are separated by spaces.",
                        "schema": {"type": "string", "pattern": "^v1,[A-Za-z0-9+/]+={0,2}( v1,[A-Za-z0-9+/]+={0,2})*$"},
                        "example": "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="
                    }
                ],
                "requestBody": {
                    "required": true,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Event"}}}
                },
                "responses": {
                    "2XX": {"description": "Delivered: nothing more is sent for this event to this endpoint."},
                    "default": {"description": "Not delivered: the event is sent again later."}
                }
            }
        }
    })
}
