-- wrk script: GET the URL given to wrk with the benchmark's API token.
--   wrk ... -s bench/get.lua URL

wrk.method = "GET"
wrk.headers["Authorization"] = "Bearer idt:TKN-1234-5678:secret"
