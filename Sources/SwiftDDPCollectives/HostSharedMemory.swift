#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SwiftDDPMPI
/// One shared file mapping split into a segment per rank of a host communicator and one common
/// region after them, so ranks on one host exchange data with loads and stores.
///
/// The file lives in `directory` — /dev/shm (tmpfs) unless `SWIFTDDP_SHM_DIR` names another,
/// e.g. a larger tmpfs where a container's /dev/shm is small. The host's rank 0 creates it with
/// its pages reserved, every rank maps it, and it is unlinked as soon as all have mapped it:
/// nothing is left behind, even if the job is killed. Unlike an MPI-3 window
/// (`MPI_Win_allocate_shared`), releasing it is local (`munmap`), so a rank that fails mid-step
/// and unwinds does not block in a collective free while the others wait for it elsewhere — the
/// job's abort path stays prompt.
final class HostSharedMemory: SharedSegments {
    let communicator: Communicator
    let count: Int
    let segments: [UnsafeMutablePointer<Float>]
    let common: UnsafeMutablePointer<Float>
    let commonCount: Int
    private let base: UnsafeMutableRawPointer
    private let length: Int

    /// Maps `count` floats per member of `host` (all on this host) and `common` floats for all.
    /// Collective over `host`.
    init(host: Communicator, count: Int, common: Int = 0) throws {
        communicator = host
        self.count = count
        commonCount = common
        // Segments start on page boundaries: no two ranks write the same cache line.
        let page = max(Int(sysconf(Int32(_SC_PAGESIZE))), 4096)
        func pages(_ floats: Int) -> Int { (max(floats, 1) * MemoryLayout<Float>.size + page - 1) / page * page }
        let stride = pages(count)
        length = stride * host.size + pages(common)
        // A name unique to this job step: the leader's pid and a per-process counter.
        var tag = [Int64(getpid()), Int64(HostSharedMemory.nextSerial())]
        try host.broadcast(&tag, root: 0)
        let name = HostSharedMemory.directory + "/swiftddp-\(tag[0])-\(tag[1])"

        var failure: String? = nil
        var fd: Int32 = -1
        if host.rank == 0 {
            fd = open(name, O_CREAT | O_EXCL | O_RDWR, 0o600)
            if fd < 0 {
                failure = "open(\(name)): \(String(cString: strerror(errno)))"
            } else if ftruncate(fd, off_t(length)) != 0 {
                failure = "ftruncate(\(name), \(length)): \(String(cString: strerror(errno)))"
            } else {
                // Reserve the pages now: on a full tmpfs the first touch would be SIGBUS, not an error.
                let code = posix_fallocate(fd, 0, off_t(length))
                if code != 0 {
                    failure = "posix_fallocate(\(name), \(length) bytes): \(String(cString: strerror(code)))"
                }
            }
        }
        try HostSharedMemory.agree(host, failure, stage: "create")
        if host.rank != 0 {
            fd = open(name, O_RDWR)
            if fd < 0 { failure = "open(\(name)): \(String(cString: strerror(errno)))" }
        }
        var mapped: UnsafeMutableRawPointer? = nil
        if failure == nil {
            let p = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
            if p == MAP_FAILED || p == nil {
                failure = "mmap of \(length) bytes: \(String(cString: strerror(errno)))"
            } else {
                mapped = p
            }
        }
        if fd >= 0 { close(fd) }
        do {
            try HostSharedMemory.agree(host, failure, stage: "map")
        } catch {
            if let mapped { munmap(mapped, length) }
            if host.rank == 0 { unlink(name) }
            throw error
        }
        // Every rank has it mapped: the name is no longer needed.
        if host.rank == 0 { unlink(name) }
        let start = mapped!
        base = start
        segments = (0..<host.size).map { (start + $0 * stride).bindMemory(to: Float.self, capacity: max(count, 1)) }
        self.common = (start + host.size * stride).bindMemory(to: Float.self, capacity: max(common, 1))
        segments[host.rank].initialize(repeating: 0, count: max(count, 1))
        if host.rank == 0 { self.common.initialize(repeating: 0, count: max(common, 1)) }
        try host.memoryBarrier()
    }

    deinit { munmap(base, length) }

    func synchronize() throws { try communicator.memoryBarrier() }

    /// Throws on every rank if any rank failed (each says which stage; the failing rank says why).
    private static func agree(_ host: Communicator, _ failure: String?, stage: String) throws {
        var anyFailed: [Int32] = [failure == nil ? 0 : 1]
        try host.allreduce(&anyFailed, op: .max)
        guard anyFailed[0] != 0 else { return }
        throw ProcessGroupError("shared memory for the ranks on this host could not be set up (\(stage)): "
            + (failure ?? "failed on another rank of this host"))
    }

    /// Where the shared file is created: `SWIFTDDP_SHM_DIR`, else /dev/shm.
    static var directory: String {
        let configured = getenv("SWIFTDDP_SHM_DIR").map { String(cString: $0) } ?? ""
        return configured.isEmpty ? "/dev/shm" : configured
    }

    nonisolated(unsafe) private static var serial = 0
    private static func nextSerial() -> Int {
        serial += 1
        return serial
    }
}
