import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import ServiceLifecycle
import XCTest
@testable import MoVQ
import MoVQDemo
@testable import MoVQServer

/// The server in process on an ephemeral loopback port, with the embedded demo models: every route, every error class, batching,
/// backpressure, timeouts, the API key and draining on shutdown.
final class ServerTests: XCTestCase {
    func server(_ edit: (inout ServerOptions) -> Void = { _ in }) throws -> MoVQServer {
        var o = ServerOptions()
        o.threads = 2
        o.port = 0
        edit(&o)
        return try MoVQServer(options: o)
    }


    func testRoutesAnswerAndBadInputGetsNamed4xx() async throws {
        let s = try server { $0.maxBodyBytes = 1 << 20 }
        defer { s.scheduler.drain() }
        let latent = NPY.encode(shape: [1, 8, 7, 7], float32: (0..<392).map { Float($0 % 7) / 7 - 0.5 })
        try await live(s) { client in
            try await client.execute(uri: "/healthz", method: .get) { XCTAssertEqual($0.status, .ok) }
            try await client.execute(uri: "/readyz", method: .get) { XCTAssertEqual($0.status, .ok) }
            try await client.execute(uri: "/v1/models", method: .get) { r in
                let data = try XCTUnwrap(try object(r)["data"] as? [[String: Any]])
                XCTAssertEqual(data.map { $0["id"] as? String }, ["demo", "demo-prior"])
                XCTAssertEqual(data[1]["decoder"] as? String, "demo")
            }
            // Generation: b64_json with per-image seeds, and a PNG for n = 1.
            try await client.execute(uri: "/v1/images/generations", method: .post, body: body(#"{"class": 3, "n": 2, "seed": 5, "steps": 4}"#)) { r in
                XCTAssertEqual(r.status, .ok, String(buffer: r.body))
                let data = try XCTUnwrap(try object(r)["data"] as? [[String: Any]])
                XCTAssertEqual(data.count, 2); XCTAssertEqual(data.map { $0["seed"] as? Int }, [5, 6])
                let png = try XCTUnwrap(Data(base64Encoded: data[0]["b64_json"] as? String ?? ""))
                XCTAssertEqual(try PNG.decode(Array(png)).width, 32)
            }
            try await client.execute(uri: "/v1/images/generations", method: .post, body: body(#"{"response_format": "png", "seed": 1}"#)) { r in
                XCTAssertEqual(r.status, .ok); XCTAssertEqual(r.headers[.contentType], "image/png")
                XCTAssertNoThrow(try PNG.decode(Array(buffer: r.body)))
            }
            // Decode a float latent to npy, an index map to png; encode a PNG to indices.
            try await client.execute(uri: "/v1/decode", method: .post, body: body(latent)) { r in
                XCTAssertEqual(r.status, .ok, errorMessage(r))
                XCTAssertEqual(try NPY.decode(Array(buffer: r.body)).shape, [1, 3, 28, 28])
            }
            let indices = NPY.encode(shape: [1, 2, 7, 7], int64: (0..<98).map { Int64($0 % 256) })
            try await client.execute(uri: "/v1/decode?format=png", method: .post, body: body(indices)) { r in
                XCTAssertEqual(r.status, .ok, errorMessage(r)); XCTAssertEqual(r.headers[.contentType], "image/png")
            }
            let image = PNG.encode(try PNG.read(path: try DemoAssets.images()[0]))
            try await client.execute(uri: "/v1/encode", method: .post, body: body(image)) { r in
                XCTAssertEqual(r.status, .ok, errorMessage(r))
                XCTAssertEqual(try NPY.decode(Array(buffer: r.body)).shape, [1, 2, 8, 8])  // 32x32 demo image, f = 4
            }
            // Every error class answers 4xx with a message naming the problem.
            let bad: [(String, String, HTTPResponse.Status, String)] = [
                ("/v1/images/generations", #"{"model": "nope"}"#, .notFound, "no prior named 'nope'"),
                ("/v1/images/generations", "{not json", .badRequest, "malformed JSON"),
                ("/v1/images/generations", #"{"n": 0}"#, .badRequest, "n must be 1...64"),
                ("/v1/images/generations", #"{"class": 11}"#, .badRequest, "class must be 0...10"),
                ("/v1/images/generations", #"{"steps": 0}"#, .badRequest, "steps must be 1...64"),
                ("/v1/images/generations", #"{"guidance": 99}"#, .badRequest, "guidance must be 0...20"),
                ("/v1/images/generations", #"{"schedule": "zigzag"}"#, .badRequest, "schedule must be"),
                ("/v1/images/generations", #"{"n": 2, "response_format": "png"}"#, .badRequest, "png answers one image"),
                ("/v1/decode", "not an npy", .badRequest, "not a .npy file"),
                ("/v1/decode?model=demo-prior", "x", .notFound, "no decoder named 'demo-prior'"),
                ("/v1/encode", "not a png", .badRequest, "PNG"),
                ("/v1/images/generations", #"{"steps": 2, "nn": 1}"#, .badRequest, "unknown field 'nn'"),
                ("/v1/images/generations", #"{"class": null}"#, .badRequest, "field 'class' is null"),
                ("/v1/images/generations", #"{"top_k": 5}"#, .badRequest, "autoregressive priors only"),
                ("/v1/decode?quantize=maybe", "x", .badRequest, "quantize must be true or false, got 'maybe'"),
                ("/v1/decode?modle=demo", "x", .badRequest, "unknown query parameter 'modle'"),
                ("/v1/nope", "x", .notFound, "no route /v1/nope"),
            ]
            for (uri, text, status, message) in bad {
                try await client.execute(uri: uri, method: .post, body: body(text)) { r in
                    XCTAssertEqual(r.status, status, "\(uri) \(text): \(String(buffer: r.body))")
                    XCTAssertTrue(errorMessage(r).contains(message), "\(uri) \(text): \(errorMessage(r))")
                }
            }
            try await client.execute(uri: "/v1/decode", method: .get) { r in
                XCTAssertEqual(r.status, .methodNotAllowed); XCTAssertEqual(r.headers[.allow], "POST")
                XCTAssertTrue(errorMessage(r).contains("answers POST, not GET"), errorMessage(r))
            }
            let wrongChannels = NPY.encode(shape: [1, 3, 7, 7], float32: [Float](repeating: 0, count: 147))
            try await client.execute(uri: "/v1/decode", method: .post, body: body(wrongChannels)) { r in
                XCTAssertEqual(r.status, .badRequest); XCTAssertTrue(errorMessage(r).contains("latent must be [B, 8, h, w]"), errorMessage(r))
            }
            try await client.execute(uri: "/v1/decode", method: .post, body: ByteBuffer(repeating: 0, count: 2 << 20)) { r in
                XCTAssertEqual(r.status, .contentTooLarge); XCTAssertTrue(errorMessage(r).contains("larger than"))
            }
            // The server keeps serving, and counts what it did.
            try await client.execute(uri: "/metrics", method: .get) { r in
                let text = String(buffer: r.body)
                XCTAssertTrue(text.contains(#"movq_requests_total{route="generations",status="200"} 2"#), text)
                XCTAssertTrue(text.contains("movq_images_generated_total 3"), text)
                XCTAssertTrue(text.contains("movq_request_duration_seconds_bucket"), text)
                XCTAssertTrue(text.contains("movq_model_load_seconds"), text)
            }
        }
    }

    /// Requests merged into one batch get exactly the images they get alone.
    func testBatchedResponsesEqualSoloOnes() async throws {
        let s = try server { $0.batchWindowMilliseconds = 400 }
        defer { s.scheduler.drain() }
        try await live(s) { client in
            func images(_ json: String) async throws -> [String] {
                try await client.execute(uri: "/v1/images/generations", method: .post, body: body(json)) { r in
                    XCTAssertEqual(r.status, .ok, String(buffer: r.body))
                    return (try object(r)["data"] as? [[String: Any]] ?? []).compactMap { $0["b64_json"] as? String }
                }
            }
            let solo = try await images(#"{"class": 2, "n": 3, "seed": 10, "steps": 4}"#)
            async let a = images(#"{"class": 2, "n": 1, "seed": 10, "steps": 4}"#)
            async let b = images(#"{"class": 2, "n": 2, "seed": 11, "steps": 4}"#)
            let (first, rest) = try await (a, b)
            XCTAssertEqual(first + rest, solo)
        }
        // Two concurrent requests run as one batch of 3 images (on a fresh server: the
        // application's shutdown at the end of `test` drained the first one's scheduler).
        let t = try server { $0.batchWindowMilliseconds = 400 }
        defer { t.scheduler.drain() }
        async let x = t.scheduler.submit(.generate(prior: "demo-prior", classes: [1], seeds: [0], settings: .init(maskgit: MaskGITSettings(steps: 2), autoregressive: .init())))
        async let y = t.scheduler.submit(.generate(prior: "demo-prior", classes: [4, 4], seeds: [1, 2], settings: .init(maskgit: MaskGITSettings(steps: 2), autoregressive: .init())))
        let (rx, ry) = try await (x, y)
        XCTAssertEqual(rx.batchImages, 3); XCTAssertEqual(ry.batchImages, 3)
    }

    /// A full queue answers 429 with Retry-After at once; a request that
    /// cannot start in time gets 503; none is lost.
    func testBackpressureAndTimeouts() async throws {
        let s = try server { $0.queueDepth = 1; $0.requestTimeoutSeconds = 1.5 }
        defer { s.scheduler.drain() }
        s.scheduler.paused = true
        try await live(s) { client in
            async let queued = client.execute(uri: "/v1/images/generations", method: .post, body: body(#"{"steps": 1}"#)) { $0.status }
            try await Task.sleep(nanoseconds: 200_000_000)
            try await client.execute(uri: "/readyz", method: .get) { XCTAssertEqual($0.status, .serviceUnavailable) }
            try await client.execute(uri: "/v1/images/generations", method: .post, body: body(#"{"steps": 1}"#)) { r in
                XCTAssertEqual(r.status, .tooManyRequests); XCTAssertEqual(r.headers[.retryAfter], "1")
                XCTAssertTrue(errorMessage(r).contains("queue is full"))
            }
            let status = try await queued  // still waiting when its 1.5 s run out
            XCTAssertEqual(status, .serviceUnavailable)
            s.scheduler.paused = false
            try await client.execute(uri: "/v1/images/generations", method: .post, body: body(#"{"steps": 1}"#)) { XCTAssertEqual($0.status, .ok) }
        }
    }

    func testAPIKeyGuardsEveryRouteButHealthz() async throws {
        let s = try server { $0.apiKey = "s3cret" }
        defer { s.scheduler.drain() }
        try await live(s) { client in
            try await client.execute(uri: "/healthz", method: .get) { XCTAssertEqual($0.status, .ok) }
            for uri in ["/v1/models", "/readyz", "/metrics"] {
                try await client.execute(uri: uri, method: .get) { XCTAssertEqual($0.status, .unauthorized, uri) }
                try await client.execute(uri: uri, method: .get, headers: [.authorization: "Bearer wrong!"]) { XCTAssertEqual($0.status, .unauthorized, uri) }
                try await client.execute(uri: uri, method: .get, headers: [.authorization: "Bearer s3cret"]) { XCTAssertEqual($0.status, .ok, uri) }
            }
        }
    }

    /// A graceful shutdown (SIGTERM) with requests queued answers every one of
    /// them, then the server returns.
    func testShutdownAnswersRequestsInFlight() async throws {
        let s = try server()
        s.scheduler.paused = true
        let started = Date()
        try await live(s) { client in
            let requests = (0..<3).map { i in
                Task { try await client.execute(uri: "/v1/images/generations", method: .post, body: body(#"{"steps": 1, "seed": \#(i)}"#)) { $0.status } }
            }
            try await waitUntil("3 requests queued") { s.scheduler.depth == 3 }
            await client.shutdown()
            try await Task.sleep(nanoseconds: 200_000_000)
            s.scheduler.paused = false
            for r in requests { let status = try await r.value; XCTAssertEqual(status, .ok) }
        }
        XCTAssertLessThan(Date().timeIntervalSince(started), 60)  // returned, did not hang
        do {
            _ = try await s.scheduler.submit(.generate(prior: "demo-prior", classes: [0], seeds: [0], settings: .init(maskgit: MaskGITSettings(steps: 1), autoregressive: .init())))
            XCTFail("work accepted after shutdown")
        } catch let e as APIError { XCTAssertEqual(e.status, .serviceUnavailable) }
    }

    /// A client that disconnects while its request is queued costs nothing:
    /// the job leaves the queue at once and never runs.
    func testDisconnectedClientsWorkIsDropped() async throws {
        let s = try server()
        s.scheduler.paused = true
        try await live(s) { client in
            try await client.abandon(uri: "/v1/images/generations", method: .post, body: body(#"{"steps": 1}"#)) {
                try await waitUntil("the request is queued") { s.scheduler.depth == 1 }
            }
            try await waitUntil("the queue is empty") { s.scheduler.depth == 0 }
            s.scheduler.paused = false
            try await client.execute(uri: "/v1/images/generations", method: .post, body: body(#"{"steps": 1}"#)) { XCTAssertEqual($0.status, .ok) }
            try await client.execute(uri: "/metrics", method: .get) { r in
                let text = String(buffer: r.body)
                XCTAssertTrue(text.contains("movq_dropped_before_start_total 1"), text)
                XCTAssertTrue(text.contains("movq_images_generated_total 1"), text)  // only the second request's image
                XCTAssertTrue(text.contains(#"movq_requests_total{route="generations",status="499"} 1"#), text)
            }
        }
    }

    /// Draining (what SIGTERM does) finishes accepted work and refuses new work.
    func testDrainFinishesAcceptedWork() async throws {
        let s = try server()
        s.scheduler.paused = true
        let settings = GenerationSettings(maskgit: MaskGITSettings(steps: 1), autoregressive: .init())
        let jobs = (0..<3).map { i in Task { try await s.scheduler.submit(.generate(prior: "demo-prior", classes: [i], seeds: [UInt64(i)], settings: settings)) } }
        try await Task.sleep(nanoseconds: 200_000_000)
        XCTAssertEqual(s.scheduler.depth, 3)
        let drained = Task.detached { s.scheduler.drain() }
        try await Task.sleep(nanoseconds: 100_000_000)
        s.scheduler.paused = false
        for j in jobs { let r = try await j.value; XCTAssertEqual(r.batchImages, 3) }
        await drained.value
        do {
            _ = try await s.scheduler.submit(.generate(prior: "demo-prior", classes: [0], seeds: [0], settings: settings))
            XCTFail("work accepted after draining")
        } catch let e as APIError { XCTAssertEqual(e.status, .serviceUnavailable) }
    }
}

/// Polls `condition` every 10 ms for up to 10 s.
func waitUntil(_ what: String, _ condition: () -> Bool) async throws {
    for _ in 0..<1000 {
        if condition() { return }
        try await Task.sleep(nanoseconds: 10_000_000)
    }
    XCTFail("timed out waiting until \(what)")
}

func body(_ s: String) -> ByteBuffer { ByteBuffer(string: s) }
func body(_ d: Data) -> ByteBuffer { ByteBuffer(bytes: d) }

/// One HTTP answer.
struct Reply: Sendable {
    var status: HTTPResponse.Status, headers: HTTPFields, body: ByteBuffer
}

/// A client of a server running on `port`: one connection per request, so
/// requests made concurrently reach the server concurrently.
struct LiveClient: Sendable {
    let port: Int
    /// Starts a graceful shutdown (what SIGTERM does).
    let shutdown: @Sendable () async -> Void

    func execute<T>(uri: String, method: HTTPRequest.Method, headers: HTTPFields = [:], body: ByteBuffer? = nil,
                    _ check: (Reply) async throws -> T = { _ in }) async throws -> T {
        let client = TestClient(host: "127.0.0.1", port: port, configuration: .init(timeout: .seconds(120)))
        client.connect()
        let reply: Reply
        do {
            let r = try await client.execute(.init(uri, method: method, authority: "localhost", headers: headers, body: body))
            reply = Reply(status: r.head.status, headers: r.head.headerFields, body: r.body ?? ByteBuffer())
        } catch { try? await client.shutdown(); throw error }
        try await client.shutdown()
        return try await check(reply)
    }

    /// Sends a request, runs `whileOpen`, then closes the connection without reading the answer.
    func abandon(uri: String, method: HTTPRequest.Method, body: ByteBuffer, whileOpen: () async throws -> Void) async throws {
        let client = TestClient(host: "127.0.0.1", port: port)
        client.connect()
        try await client.executeAndDontWaitForResponse(.init(uri, method: method, authority: "localhost", headers: [:], body: body))
        try await whileOpen()
        try await client.shutdown()
    }
}

/// Runs `s` on an ephemeral loopback port for `test`, then shuts it down
/// gracefully (what SIGTERM does) and waits for it to finish.
func live<T: Sendable>(_ s: MoVQServer, _ test: @escaping @Sendable (LiveClient) async throws -> T) async throws -> T {
    let (ports, portSink) = AsyncStream<Int>.makeStream()
    let app = s.application { port in portSink.yield(port); portSink.finish() }
    let group = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [], logger: Logger(label: "test")))
    let running = Task { try await group.run() }
    var it = ports.makeAsyncIterator()
    guard let port = await it.next() else { throw CancellationError() }
    do {
        let value = try await test(LiveClient(port: port, shutdown: { await group.triggerGracefulShutdown() }))
        await group.triggerGracefulShutdown()
        try await running.value
        return value
    } catch {
        await group.triggerGracefulShutdown()
        try? await running.value
        throw error
    }
}

func object(_ r: Reply) throws -> [String: Any] {
    try XCTUnwrap(JSONSerialization.jsonObject(with: Data(buffer: r.body)) as? [String: Any], String(buffer: r.body))
}
func errorMessage(_ r: Reply) -> String { (try? object(r)["error"] as? String) ?? "<no error field: \(String(buffer: r.body))>" }
