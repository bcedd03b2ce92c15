//! What a booking may ask for (seats of a seated showing, tickets of a
//! quota, a bike alone), and how the seat map reads. Whether a seat is
//! free is decided by the database (one row per held or sold seat, unique
//! per showing), never by reading first.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use contracts::catalog::InventoryRejection;
use kernel::SeatLabel;

use super::SoldBy;

/// Where one seat of a showing stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeatStatus {
    Available,
    Held,
    Sold,
}

impl SeatStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SeatStatus::Available => "available",
            SeatStatus::Held => "held",
            SeatStatus::Sold => "sold",
        }
    }
}

impl fmt::Display for SeatStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SeatStatus {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "available" => Ok(SeatStatus::Available),
            "held" => Ok(SeatStatus::Held),
            "sold" => Ok(SeatStatus::Sold),
            other => anyhow::bail!("unknown seat status {other:?}"),
        }
    }
}

/// What became of one reservation's inventory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldStatus {
    /// Held for a pending reservation.
    Held,
    /// The reservation was confirmed.
    Sold,
    /// Given back (rejected, expired or cancelled).
    Released,
    /// Catalog refused it; remembered so a redelivery refuses it again
    /// rather than deciding anew on a changed seat map.
    Rejected,
}

impl HoldStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HoldStatus::Held => "held",
            HoldStatus::Sold => "sold",
            HoldStatus::Released => "released",
            HoldStatus::Rejected => "rejected",
        }
    }

    /// Whether there is inventory to give back.
    pub fn is_releasable(self) -> bool {
        matches!(self, HoldStatus::Held | HoldStatus::Sold)
    }
}

impl fmt::Display for HoldStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for HoldStatus {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "held" => Ok(HoldStatus::Held),
            "sold" => Ok(HoldStatus::Sold),
            "released" => Ok(HoldStatus::Released),
            "rejected" => Ok(HoldStatus::Rejected),
            other => anyhow::bail!("unknown hold status {other:?}"),
        }
    }
}

/// Checks that a booking suits how its listing is sold: named seats for a
/// seated showing (each once, as many as tickets), none for a quota, and
/// for a unit (a bike) none and just the one.
pub fn check_booking(
    sold_by: SoldBy,
    seats: &[SeatLabel],
    quantity: u32,
) -> Result<(), InventoryRejection> {
    let unsuitable = |detail: String| Err(InventoryRejection::Unsuitable { detail });
    match (sold_by, seats.is_empty()) {
        (SoldBy::Tickets, false) => unsuitable(format!(
            "this listing sells tickets by quota; it has no seats to choose ({} named)",
            kernel::seat::list(seats)
        )),
        (SoldBy::Unit, false) => unsuitable(format!(
            "a bike has no seats to choose ({} named)",
            kernel::seat::list(seats)
        )),
        (SoldBy::Unit, true) if quantity != 1 => unsuitable(format!(
            "a bike is rented one at a time ({quantity} requested)"
        )),
        (SoldBy::Seats, true) => {
            unsuitable("this showing has assigned seats; name the seats to book".into())
        }
        (SoldBy::Tickets | SoldBy::Unit, true) => Ok(()),
        (SoldBy::Seats, false) => {
            let distinct: BTreeSet<SeatLabel> = seats.iter().copied().collect();
            if distinct.len() != seats.len() {
                return unsuitable(format!(
                    "a seat is named more than once ({})",
                    kernel::seat::list(seats)
                ));
            }
            if seats.len() != quantity as usize {
                return unsuitable(format!(
                    "{quantity} tickets requested but {} seats named",
                    seats.len()
                ));
            }
            Ok(())
        }
    }
}

/// The seats of `requested` the showing does not have, as a rejection.
pub fn unknown_seats(
    requested: &[SeatLabel],
    known: &BTreeSet<SeatLabel>,
) -> Result<(), InventoryRejection> {
    let unknown: Vec<SeatLabel> = requested
        .iter()
        .copied()
        .filter(|seat| !known.contains(seat))
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(InventoryRejection::UnknownSeats { seats: unknown })
    }
}

/// The seat map: every seat of the showing in seat order, available unless
/// it is held or sold.
pub fn seat_map(
    seats: impl IntoIterator<Item = SeatLabel>,
    taken: impl IntoIterator<Item = (SeatLabel, SeatStatus)>,
) -> Vec<(SeatLabel, SeatStatus)> {
    let taken: std::collections::BTreeMap<SeatLabel, SeatStatus> = taken.into_iter().collect();
    let seats: BTreeSet<SeatLabel> = seats.into_iter().collect();
    seats
        .into_iter()
        .map(|seat| {
            let status = taken.get(&seat).copied().unwrap_or(SeatStatus::Available);
            (seat, status)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seats(labels: &[&str]) -> Vec<SeatLabel> {
        labels.iter().map(|label| label.parse().unwrap()).collect()
    }

    #[test]
    fn a_seated_booking_names_each_of_its_seats_once() {
        assert_eq!(
            check_booking(SoldBy::Seats, &seats(&["A-1", "A-2"]), 2),
            Ok(())
        );
        assert!(matches!(
            check_booking(SoldBy::Seats, &[], 2),
            Err(InventoryRejection::Unsuitable { .. })
        ));
        assert!(matches!(
            check_booking(SoldBy::Seats, &seats(&["A-1", "A-1"]), 2),
            Err(InventoryRejection::Unsuitable { .. })
        ));
        assert!(matches!(
            check_booking(SoldBy::Seats, &seats(&["A-1"]), 2),
            Err(InventoryRejection::Unsuitable { .. })
        ));
    }

    #[test]
    fn a_quota_booking_names_no_seats() {
        assert_eq!(check_booking(SoldBy::Tickets, &[], 3), Ok(()));
        let Err(InventoryRejection::Unsuitable { detail }) =
            check_booking(SoldBy::Tickets, &seats(&["A-1"]), 1)
        else {
            panic!("seats on a quota listing are unsuitable");
        };
        assert!(detail.contains("quota"), "{detail}");
    }

    #[test]
    fn a_bike_is_booked_alone_without_seats() {
        assert_eq!(check_booking(SoldBy::Unit, &[], 1), Ok(()));
        let unsuitable =
            |seats: &[SeatLabel], quantity| match check_booking(SoldBy::Unit, seats, quantity) {
                Err(InventoryRejection::Unsuitable { detail }) => detail,
                other => panic!("{other:?}"),
            };
        assert_eq!(
            unsuitable(&[], 2),
            "a bike is rented one at a time (2 requested)"
        );
        assert_eq!(
            unsuitable(&seats(&["A-1"]), 1),
            "a bike has no seats to choose (A-1 named)"
        );
    }

    #[test]
    fn seats_the_showing_lacks_are_named() {
        let known: BTreeSet<SeatLabel> = SeatLabel::grid(2, 2).collect();
        assert_eq!(unknown_seats(&seats(&["A-1", "B-2"]), &known), Ok(()));
        assert_eq!(
            unknown_seats(&seats(&["A-1", "C-1", "A-3"]), &known),
            Err(InventoryRejection::UnknownSeats {
                seats: seats(&["C-1", "A-3"])
            })
        );
    }

    #[test]
    fn the_seat_map_is_in_seat_order_with_taken_seats_marked() {
        let map = seat_map(
            seats(&["B-1", "A-10", "A-2", "A-1"]),
            [
                ("A-2".parse().unwrap(), SeatStatus::Held),
                ("B-1".parse().unwrap(), SeatStatus::Sold),
            ],
        );
        let read: Vec<String> = map
            .iter()
            .map(|(seat, status)| format!("{seat} {status}"))
            .collect();
        assert_eq!(
            read,
            ["A-1 available", "A-2 held", "A-10 available", "B-1 sold"]
        );
    }

    #[test]
    fn statuses_read_back_what_they_write() {
        for status in [SeatStatus::Available, SeatStatus::Held, SeatStatus::Sold] {
            assert_eq!(status.as_str().parse::<SeatStatus>().unwrap(), status);
        }
        for status in [
            HoldStatus::Held,
            HoldStatus::Sold,
            HoldStatus::Released,
            HoldStatus::Rejected,
        ] {
            assert_eq!(status.as_str().parse::<HoldStatus>().unwrap(), status);
        }
        assert!(!HoldStatus::Rejected.is_releasable());
    }
}
