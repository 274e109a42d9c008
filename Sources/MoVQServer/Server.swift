import Foundation
import Hummingbird
import Logging
import MoVQ
import ServiceLifecycle

/// The `movq-server` application: models loaded once, one compute
/// scheduler, the routes of Docs/openapi.yaml.
public struct MoVQServer: Sendable {
    /// The options it runs with.
    public let options: ServerOptions
    /// The loaded models.
    public let registry: ModelRegistry
    let scheduler: ComputeScheduler
    let metrics: ServerMetrics
    let logger: Logger
    private let requestCounter = RequestCounter()

    /// Loads and warms the models (throws `MoVQError` naming a bad one).
    public init(options: ServerOptions, logger: Logger = Logger(label: "movq-server")) throws {
        self.options = options; self.logger = logger
        metrics = ServerMetrics()
        registry = try ModelRegistry(models: options.models, threads: options.threads)
        for (name, seconds) in registry.loadSeconds { metrics.modelLoaded(name, seconds: seconds) }
        scheduler = ComputeScheduler(registry: registry, options: options, metrics: metrics)
    }

    /// The HTTP application (run it with `runService()`: SIGTERM/SIGINT stop
    /// accepting, finish accepted work, then return). `onListening` gets the
    /// port it listens on (the one chosen by the system when `port` is 0).
    public func application(onListening: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
        Application(router: router(), configuration: .init(address: .hostname(options.host, port: options.port), serverName: "movq-server"),
                    services: [DrainService(scheduler: scheduler)], onServerRunning: { await onListening($0.localAddress?.port ?? 0) },
                    logger: logger)
    }

    /// Each route's path and method (what 405 answers name in `Allow`).
    static let routes: [String: HTTPRequest.Method] = [
        "/healthz": .get, "/readyz": .get, "/metrics": .get, "/v1/models": .get,
        "/v1/images/generations": .post, "/v1/decode": .post, "/v1/encode": .post,
    ]

    /// The routes.
    public func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: JSONErrorMiddleware())
        router.add(middleware: AuthMiddleware(key: options.apiKey))
        router.get("/healthz") { _, _ in json(["status": "ok"]) }
        router.get("/readyz") { _, _ in
            scheduler.hasRoom ? json(["status": "ready"]) : json(["status": "busy"], status: .serviceUnavailable)
        }
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: .init(byteBuffer: ByteBuffer(string: metrics.text)))
        }
        router.get("/v1/models") { _, _ in jsonObject(["object": "list", "data": registry.describe()]) }
        router.post("/v1/images/generations") { request, _ in
            await handle("generations", request) { body in try await generate(body) }
        }
        router.post("/v1/decode") { request, _ in
            await handle("decode", request) { body in try await decode(body, request.uri.queryParameters) }
        }
        router.post("/v1/encode") { request, _ in
            await handle("encode", request) { body in try await encode(body, request.uri.queryParameters) }
        }
        return router
    }

    /// What a route reports for its log line.
    struct Outcome: Sendable { var response: Response; var model: String? = nil; var result: WorkResult? = nil }

    /// Reads the body (413 past the limit), runs `body`, turns errors into
    /// JSON answers, and records the metrics and one log line. A client that
    /// closes its connection cancels the work (dropped if it has not started);
    /// the price is one connection per compute request (`Connection: close`),
    /// nothing next to the compute.
    func handle(_ route: String, _ request: Request, _ body: @escaping @Sendable ([UInt8]) async throws -> Outcome) async -> Response {
        let t0 = Date(), id = requestCounter.next(), limit = options.maxBodyBytes
        var outcome: Outcome
        do {
            outcome = try await request.body.consumeWithCancellationOnInboundClose { requestBody in
                var buffer: ByteBuffer
                do { buffer = try await requestBody.collect(upTo: limit) } catch {
                    throw APIError(.contentTooLarge, "the body is larger than \(limit) bytes")
                }
                return try await body(buffer.readBytes(length: buffer.readableBytes) ?? [])
            }
        } catch is CancellationError {
            // 499 (client closed request, as nginx logs it): there is no one to read the answer.
            outcome = Outcome(response: APIError(.init(code: 499, reasonPhrase: "Client Closed Request"), "the client closed the connection").response)
        } catch {
            outcome = Outcome(response: APIError.from(error).response)
        }
        let seconds = Date().timeIntervalSince(t0), status = outcome.response.status.code
        metrics.request(route: route, status: status, seconds: seconds)
        var meta: Logger.Metadata = ["id": "\(id)", "route": "\(route)", "status": "\(status)", "seconds": "\(String(format: "%.4f", seconds))"]
        if let m = outcome.model { meta["model"] = "\(m)" }
        if let r = outcome.result {
            meta["queue_s"] = "\(String(format: "%.4f", r.queueSeconds))"; meta["compute_s"] = "\(String(format: "%.4f", r.computeSeconds))"
            meta["batch_images"] = "\(r.batchImages)"
        }
        logger.info("request", metadata: meta)
        // Watching the connection for a disconnect consumes it: this answer is its last.
        var response = outcome.response
        response.headers[.connection] = "close"
        return response
    }

    // MARK: Routes

    /// The JSON fields of `POST /v1/images/generations`.
    struct GenerationRequest: Decodable {
        // Numbers as Double: JSON allows values (5e-324) a Float field fails to decode.
        var model: String?, `class`: Int?, n: Int?, seed: UInt64?, steps: Int?, guidance: Double?, temperature: Double?
        var choice_temperature: Double?, schedule: String?, response_format: String?, top_k: Int?, top_p: Double?
        enum CodingKeys: String, CodingKey, CaseIterable {
            case model, `class`, n, seed, steps, guidance, temperature, choice_temperature, schedule, response_format, top_k, top_p
        }
        static let fields = Set(CodingKeys.allCases.map(\.rawValue))
    }

    func generate(_ body: [UInt8]) async throws -> Outcome {
        let r: GenerationRequest
        do { r = try JSONDecoder().decode(GenerationRequest.self, from: Data(body)) } catch {
            throw APIError.badRequest("malformed JSON: \(String(describing: error).prefix(200))")
        }
        let fields = (try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any]) ?? [:]
        if let unknown = Set(fields.keys).subtracting(GenerationRequest.fields).sorted().first {
            throw APIError.badRequest("unknown field '\(unknown)' (fields: \(GenerationRequest.fields.sorted().joined(separator: ", ")))")
        }
        if let null = fields.filter({ $0.value is NSNull }).keys.sorted().first {
            throw APIError.badRequest("field '\(null)' is null: leave it out for its default")
        }
        guard let name = r.model ?? registry.priors.keys.sorted().first else { throw APIError.badRequest("no prior is loaded") }
        guard let (prior, _) = registry.priors[name] else {
            throw APIError.notFound("no prior named '\(name)' (loaded: \(registry.priors.keys.sorted().joined(separator: ", ")))")
        }
        let c = prior.config
        let n = r.n ?? 1, cls = r.class ?? c.classes, seed = r.seed ?? 0
        guard (1...64).contains(n) else { throw APIError.badRequest("n must be 1...64, got \(n)") }
        guard (0...c.classes).contains(cls) else { throw APIError.badRequest("class must be 0...\(c.classes) (\(c.classes) = unconditional), got \(cls)") }
        guard seed <= UInt64.max - UInt64(n) else { throw APIError.badRequest("seed too large") }
        let format = r.response_format ?? "b64_json"
        guard format == "b64_json" || format == "png" else { throw APIError.badRequest("response_format must be b64_json or png, got '\(format)'") }
        guard format == "b64_json" || n == 1 else { throw APIError.badRequest("response_format png answers one image: use n = 1 or b64_json") }
        // Ranges checked on the values as sent (before narrowing to Float).
        guard (0.01...10).contains(r.temperature ?? 1) else { throw APIError.badRequest("temperature must be 0.01...10, got \(r.temperature!)") }
        guard (0...20).contains(r.guidance ?? 0) else { throw APIError.badRequest("guidance must be 0...20, got \(r.guidance!)") }
        guard (0...100).contains(r.choice_temperature ?? 0) else { throw APIError.badRequest("choice_temperature must be 0...100, got \(r.choice_temperature!)") }
        var settings = GenerationSettings(maskgit: MaskGITSettings(), autoregressive: AutoregressiveSettings())
        if case .maskgit(let p) = prior {
            settings.maskgit.steps = r.steps ?? 8
            settings.maskgit.guidance = r.guidance.map { Float($0) } ?? p.file.header.metadata["guidance"].flatMap { Float($0) } ?? 0
            settings.maskgit.temperature = Float(r.temperature ?? 1)
            settings.maskgit.choiceTemperature = Float(r.choice_temperature ?? 4.5)
            if let s = r.schedule {
                guard let schedule = MaskSchedule(name: s) else { throw APIError.badRequest("schedule must be cosine, linear, pow<k>, log or exp, got '\(s)'") }
                settings.maskgit.schedule = schedule
            }
            guard (1...64).contains(settings.maskgit.steps) else { throw APIError.badRequest("steps must be 1...64, got \(settings.maskgit.steps)") }
            guard r.top_k == nil, r.top_p == nil else { throw APIError.badRequest("top_k and top_p apply to autoregressive priors only") }
        } else {
            guard r.steps == nil, r.guidance == nil, r.choice_temperature == nil, r.schedule == nil else {
                throw APIError.badRequest("steps, guidance, choice_temperature and schedule apply to MaskGIT priors only")
            }
            settings.autoregressive = AutoregressiveSettings(temperature: r.temperature ?? 1, topK: r.top_k ?? 0, topP: r.top_p ?? 1)
            try settings.autoregressive.validate()
        }
        let result = try await scheduler.submit(.generate(prior: name, classes: [Int](repeating: cls, count: n),
                                                          seeds: (0..<UInt64(n)).map { seed + $0 }, settings: settings))
        guard case .images(let images) = result.output else { throw APIError(.internalServerError, "unexpected result") }
        if format == "png" {
            return Outcome(response: binary(PNG.encode(images[0]), type: "image/png"), model: name, result: result)
        }
        let data = images.enumerated().map { ["b64_json": PNG.encode($0.element).base64EncodedString(), "seed": seed + UInt64($0.offset)] as [String: Any] }
        return Outcome(response: jsonObject(["created": Int(Date().timeIntervalSince1970), "data": data]), model: name, result: result)
    }

    /// Refuses query parameters a route does not take (a typo would otherwise be ignored).
    func checkQuery(_ query: Parameters, allowed: Set<String>) throws {
        if let unknown = query.map({ String($0.key) }).filter({ !allowed.contains($0) }).sorted().first {
            throw APIError.badRequest("unknown query parameter '\(unknown)' (this route takes: \(allowed.sorted().joined(separator: ", ")))")
        }
    }

    func decoderName(_ query: Parameters) throws -> String {
        guard let name = query["model"].map(String.init) ?? registry.decoders.keys.sorted().first else { throw APIError.badRequest("no decoder is loaded") }
        guard registry.decoders[name] != nil else {
            throw APIError.notFound("no decoder named '\(name)' (loaded: \(registry.decoders.keys.sorted().joined(separator: ", ")))")
        }
        return name
    }

    func decode(_ body: [UInt8], _ query: Parameters) async throws -> Outcome {
        try checkQuery(query, allowed: ["model", "quantize", "format"])
        let name = try decoderName(query), m = registry.decoders[name]!
        let quantize: Bool
        switch query["quantize"].map(String.init) ?? "false" {
        case "true", "1": quantize = true
        case "false", "0": quantize = false
        case let other: throw APIError.badRequest("quantize must be true or false, got '\(other)'")
        }
        let format = query["format"].map(String.init) ?? "npy"
        guard format == "npy" || format == "png" else { throw APIError.badRequest("format must be npy or png, got '\(format)'") }
        let array = try NPY.decode(body, name: "body")
        let input: DecodeInput
        if [.f32, .f64, .f16].contains(array.dtype) {
            let t = try array.floatTensor(name: "body")
            guard t.shape.count == 4, t.shape[1] == m.config.vqEmbedDim else {
                throw APIError.badRequest("latent must be [B, \(m.config.vqEmbedDim), h, w], got \(t.shape)")
            }
            input = .latent(t)
        } else {
            guard !quantize else { throw APIError.badRequest("quantize applies to float latents, not index maps") }
            input = .indices(try array.indexMap(name: "body"))
        }
        let s: [Int] = { switch input { case .latent(let t): return t.shape; case .indices(let x): return x.shape } }()
        guard (1...64).contains(s[0]) else { throw APIError.badRequest("batch must be 1...64, got \(s[0])") }
        try m.checkDecodeMemory(batch: s[0], latentHeight: s[2], latentWidth: s[3], threads: options.threads)
        if case .indices(let x) = input, x.shape[1] != m.config.channelsPerPosition {
            throw APIError.badRequest("index map has \(x.shape[1]) indices per position, the model uses \(m.config.channelsPerPosition)")
        }
        guard format == "npy" || s[0] == 1 else { throw APIError.badRequest("format png answers one image: send a batch of 1 or use npy") }
        let result = try await scheduler.submit(.decode(model: name, input: input, quantize: quantize))
        guard case .tensor(let t) = result.output else { throw APIError(.internalServerError, "unexpected result") }
        if format == "png" {
            return Outcome(response: binary(PNG.encode(ImageConversion.images(from: t)[0]), type: "image/png"), model: name, result: result)
        }
        return Outcome(response: binary(NPY.encode(shape: t.shape, float32: t.data)), model: name, result: result)
    }

    func encode(_ body: [UInt8], _ query: Parameters) async throws -> Outcome {
        try checkQuery(query, allowed: ["model"])
        let name = try decoderName(query), m = registry.decoders[name]!
        guard m.config.hasEncoder else { throw APIError.badRequest("model '\(name)' has no encoder") }
        let image = try PNG.decode(body, path: "body", maxPixels: 1 << 24)
        try m.checkEncodeMemory(batch: 1, height: image.height, width: image.width, threads: options.threads)
        let t = try ImageConversion.tensor(from: [image], channels: m.config.inChannels)
        let result = try await scheduler.submit(.encode(model: name, images: t))
        guard case .indices(let x) = result.output else { throw APIError(.internalServerError, "unexpected result") }
        return Outcome(response: binary(NPY.encode(shape: x.shape, int64: x.values.map { Int64($0) })), model: name, result: result)
    }
}

/// Router errors as JSON `{"error": ...}`: 405 with `Allow` for a known path
/// called with the wrong method, 404 naming an unknown path.
struct JSONErrorMiddleware: RouterMiddleware {
    typealias Context = BasicRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError {
            guard error.status == .notFound else { return APIError(error.status, error.body ?? error.status.reasonPhrase).response }
            guard let method = MoVQServer.routes[request.uri.path] else { return APIError.notFound("no route \(request.uri.path)").response }
            var e = APIError(.methodNotAllowed, "\(request.uri.path) answers \(method.rawValue), not \(request.method.rawValue)")
            e.headers[.allow] = method.rawValue
            return e.response
        }
    }
}

/// `Authorization: Bearer KEY` on every route but `/healthz` when a key is set (compared in constant time).
struct AuthMiddleware: RouterMiddleware {
    typealias Context = BasicRequestContext
    let key: String?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let key, request.uri.path != "/healthz" else { return try await next(request, context) }
        let given = Array((request.headers[.authorization] ?? "").utf8), want = Array("Bearer \(key)".utf8)
        var diff = UInt8(given.count == want.count ? 0 : 1)
        for i in 0..<want.count { diff |= want[i] ^ (i < given.count ? given[i] : 0) }
        guard diff == 0 else { return APIError(.unauthorized, "missing or wrong API key (Authorization: Bearer KEY)").response }
        return try await next(request, context)
    }
}

/// Finishes accepted work on graceful shutdown.
struct DrainService: Service {
    let scheduler: ComputeScheduler
    func run() async throws {
        try? await gracefulShutdown()
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            Thread { scheduler.drain(); c.resume() }.start()
        }
    }
}

/// Request ids for the log lines.
final class RequestCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func next() -> Int { lock.lock(); defer { lock.unlock() }; n += 1; return n }
}

func json(_ object: [String: String], status: HTTPResponse.Status = .ok) -> Response { jsonObject(object, status: status) }

/// A 200 answer carrying `data` (`.npy` unless `type` says otherwise).
func binary(_ data: Data, type: String = "application/octet-stream") -> Response {
    Response(status: .ok, headers: [.contentType: type], body: .init(byteBuffer: ByteBuffer(bytes: data)))
}

func jsonObject(_ object: [String: Any], status: HTTPResponse.Status = .ok) -> Response {
    let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
    return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
}
