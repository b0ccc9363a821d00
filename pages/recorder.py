"""Buffers per-step records and hands them out in upload batches. Pure Python; the
page's socket client does the sending. A batch leaves the buffer only when the server
acknowledged it, so a failed upload is retried with the next one."""


class StepRecorder:
    def __init__(self, episode_id, batch_size):
        self.episode_id = episode_id
        self.batch_size = batch_size
        self.unsent = []
        self.in_flight = {}  # batch number -> records
        self.next_batch = 1
        self.acked = 0

    def add(self, record):
        self.unsent.append(record)
        return len(self.unsent) >= self.batch_size

    def take_batch(self):
        """Records to upload now (may be empty), with the number naming the batch."""
        if not self.unsent:
            return None, []
        number = self.next_batch
        self.next_batch += 1
        records = self.unsent
        self.unsent = []
        self.in_flight[number] = records
        return number, records

    def acknowledge(self, number):
        records = self.in_flight.pop(number, [])
        self.acked += len(records)

    def failed(self, number):
        # back into the buffer for the next upload, keeping frame order
        records = self.in_flight.pop(number, [])
        merged = records + self.unsent
        merged.sort(key=lambda r: r["frame"])
        self.unsent = merged

    def pending(self):
        return len(self.unsent) + sum(len(r) for r in self.in_flight.values())

    def pending_records(self):
        """Everything not yet acknowledged, in frame order (what must survive a reload)."""
        out = []
        for number in sorted(self.in_flight):
            out.extend(self.in_flight[number])
        out.extend(self.unsent)
        out.sort(key=lambda r: r["frame"])
        return out
