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
    /// accepting, finish accepted work, then return).
    public func application() -> some ApplicationProtocol {
        Application(router: router(), configuration: .init(address: .hostname(options.host, port: options.port), serverName: "movq-server"),
                    services: [DrainService(scheduler: scheduler)], logger: logger)
    }

    /// The routes.
    public func router() -> Router<BasicRequestContext> {
        let router = Router()
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
    struct Outcome { var response: Response; var model: String? = nil; var result: WorkResult? = nil }

    /// Reads the body (413 past the limit), runs `body`, turns errors into
    /// JSON answers, and records the metrics and one log line.
    func handle(_ route: String, _ request: Request, _ body: ([UInt8]) async throws -> Outcome) async -> Response {
        let t0 = Date(), id = requestCounter.next()
        var outcome: Outcome
        do {
            var buffer: ByteBuffer
            do { buffer = try await request.body.collect(upTo: options.maxBodyBytes) } catch {
                throw APIError(.contentTooLarge, "the body is larger than \(options.maxBodyBytes) bytes")
            }
            outcome = try await body(buffer.readBytes(length: buffer.readableBytes) ?? [])
        } catch is CancellationError {
            outcome = Outcome(response: APIError(.serviceUnavailable, "cancelled").response)
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
        return outcome.response
    }

    // MARK: Routes

    /// The JSON fields of `POST /v1/images/generations`.
    struct GenerationRequest: Decodable {
        var model: String?, `class`: Int?, n: Int?, seed: UInt64?, steps: Int?, guidance: Float?, temperature: Float?
        var choice_temperature: Float?, schedule: String?, response_format: String?, top_k: Int?, top_p: Double?
    }

    func generate(_ body: [UInt8]) async throws -> Outcome {
        let r: GenerationRequest
        do { r = try JSONDecoder().decode(GenerationRequest.self, from: Data(body)) } catch {
            throw APIError.badRequest("malformed JSON: \(String(describing: error).prefix(200))")
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
        var settings = GenerationSettings(maskgit: MaskGITSettings(), autoregressive: AutoregressiveSettings())
        if case .maskgit(let p) = prior {
            settings.maskgit.steps = r.steps ?? 8
            settings.maskgit.guidance = r.guidance ?? p.file.header.metadata["guidance"].flatMap { Float($0) } ?? 0
            settings.maskgit.temperature = r.temperature ?? 1
            settings.maskgit.choiceTemperature = r.choice_temperature ?? 4.5
            if let s = r.schedule {
                guard let schedule = MaskSchedule(name: s) else { throw APIError.badRequest("schedule must be cosine, linear, pow<k>, log or exp, got '\(s)'") }
                settings.maskgit.schedule = schedule
            }
            guard (1...64).contains(settings.maskgit.steps) else { throw APIError.badRequest("steps must be 1...64, got \(settings.maskgit.steps)") }
            guard (0...20).contains(settings.maskgit.guidance) else { throw APIError.badRequest("guidance must be 0...20, got \(settings.maskgit.guidance)") }
            guard settings.maskgit.temperature > 0 && settings.maskgit.temperature <= 10 else { throw APIError.badRequest("temperature must be in (0, 10]") }
            guard (0...100).contains(settings.maskgit.choiceTemperature) else { throw APIError.badRequest("choice_temperature must be 0...100") }
        } else {
            guard r.steps == nil, r.guidance == nil, r.choice_temperature == nil, r.schedule == nil else {
                throw APIError.badRequest("steps, guidance, choice_temperature and schedule apply to MaskGIT priors only")
            }
            settings.autoregressive = AutoregressiveSettings(temperature: Double(r.temperature ?? 1), topK: r.top_k ?? 0, topP: r.top_p ?? 1)
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

    func decoderName(_ query: Parameters) throws -> String {
        guard let name = query["model"].map(String.init) ?? registry.decoders.keys.sorted().first else { throw APIError.badRequest("no decoder is loaded") }
        guard registry.decoders[name] != nil else {
            throw APIError.notFound("no decoder named '\(name)' (loaded: \(registry.decoders.keys.sorted().joined(separator: ", ")))")
        }
        return name
    }

    func decode(_ body: [UInt8], _ query: Parameters) async throws -> Outcome {
        let name = try decoderName(query), m = registry.decoders[name]!
        let quantize = ["1", "true", "yes"].contains(query["quantize"].map(String.init) ?? "false")
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
