//! What budget tools read: the Prometheus text exposition of SLO statuses and their
//! remote-write push. (Being written.)
