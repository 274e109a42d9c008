import Foundation
import Hummingbird
import MoVQ

/// A failed request: an HTTP status and a one-line message, sent as
/// `{"error": "..."}`.
public struct APIError: Error, Sendable {
    /// The HTTP status.
    public var status: HTTPResponse.Status
    /// What is wrong, in one line.
    public var message: String
    /// Extra headers (`Retry-After` for 429).
    public var headers: HTTPFields = [:]

    /// An error answering `status` with `message`.
    public init(_ status: HTTPResponse.Status, _ message: String) { self.status = status; self.message = message }

    static func badRequest(_ m: String) -> APIError { APIError(.badRequest, m) }
    static func notFound(_ m: String) -> APIError { APIError(.notFound, m) }

    /// Library errors are the caller's fault (bad input) unless they say otherwise.
    static func from(_ error: any Error) -> APIError {
        if let e = error as? APIError { return e }
        if let e = error as? MoVQError {
            switch e {
            case .memoryLimit: return APIError(.contentTooLarge, e.description)
            case .io: return APIError(.internalServerError, e.description)
            default: return APIError(.badRequest, e.description)
            }
        }
        return APIError(.internalServerError, "\(error)")
    }

    /// The JSON response.
    var response: Response {
        var h = headers
        h[.contentType] = "application/json"
        let body = (try? JSONSerialization.data(withJSONObject: ["error": message])) ?? Data("{}".utf8)
        return Response(status: status, headers: h, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}
