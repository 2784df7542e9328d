pub mod traverse;
