-- wrk script: HTTP message protocol publishes (POST /topics/<topic>/messages, the XML body
-- @aliyunmq/mq-http-sdk sends) over wrk's keep-alive connections; every non-201 answer is
-- counted and printed at the end. Unsigned: run against a broker with aclEnable=false.
--   wrk -t2 -c32 -d10s -s bench/http_publish.lua http://127.0.0.1:8080 -- <topic> [bodyBytes]
local topic = "BenchHttp"
local size = 128
local errors = 0

function init(args)
    if args[1] then topic = args[1] end
    if args[2] then size = tonumber(args[2]) end
    local body = '<?xml version="1.0" encoding="UTF-8"?>' ..
        '<Message xmlns="http://mq.aliyuncs.com/doc/v1/"><MessageBody><![CDATA[' ..
        string.rep("x", size) .. ']]></MessageBody><MessageTag><![CDATA[bench]]></MessageTag>' ..
        '</Message>'
    wrk.method = "POST"
    wrk.path = "/topics/" .. topic .. "/messages"
    wrk.body = body
    wrk.headers["Content-Type"] = "text/xml;charset=utf-8"
    wrk.headers["x-mq-version"] = "2015-06-06"
end

function response(status, headers, body)
    if status ~= 201 then
        errors = errors + 1
        if errors <= 3 then print("answer " .. status .. ": " .. body) end
    end
end

function done(summary, latency, requests)
    io.write(string.format("non-2xx/3xx answers: %d of %d\n", summary.errors.status,
        summary.requests))
end
