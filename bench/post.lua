-- wrk script: POST /v2/customers with a JSON body; the token comes from the TOKEN env var.
wrk.method = "POST"
wrk.body = '{"name":"Bench Customer","email":"bench@example.com","phone":"+44 20 7946 0958"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
